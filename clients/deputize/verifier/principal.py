"""What a verified request tells the resource server: who it is for and who is acting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deputize.keys.chain import Chain


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified, DPoP-bound access token and its delegation chain.

    ``user`` is the person at the root of the chain (the token's ``sub``); ``actor`` is the
    agent acting now (the outermost ``act``), or None for a token the user's own app holds or a
    client's own token.  ``chain.actors`` lists every agent, oldest first.
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
