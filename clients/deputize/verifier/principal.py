"""What a verified request tells the resource server: who it is for and who is acting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from deputize.keys.chain import Chain


class Principal(NamedTuple):
    """A verified, DPoP-bound access token and its delegation chain.

    ``user`` is the person at the root of the chain (the token's ``sub``); ``actor`` is the
    agent acting now (the outermost ``act``), or None for a token the user's own app holds or a
    client's own token.  ``chain.actors`` lists every agent, oldest first.

    Immutable, and shared by every request that presents the same token.  A named tuple
    rather than a frozen dataclass: one is built for every new token, and a frozen dataclass
    sets each of its eleven fields through ``object.__setattr__`` (about 2,000 instructions
    apiece), a tuple all at once.
    """

    user: str
    actor: str | None
    chain: Chain
    scopes: frozenset[str]
    audience: tuple[str, ...]
    task: str | None
    client_id: str
    jti: str
    expires_at: int
    jkt: str | None
    claims: Mapping[str, Any]

    def has_scopes(self, *scopes: str) -> bool:
        return self.scopes.issuperset(scopes)
