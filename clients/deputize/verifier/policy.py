"""A resource server's rules for delegation chains, on top of the issuer's own.

The issuer already enforces attenuation at every hop (``deputize.keys.chain``) and
:func:`deputize.keys.chain.parse_chain` re-checks the chain's shape here (nesting, depth
≤ 16, no actor twice).  A resource may be stricter: fewer hops, only some agents, none of
others, and only chains rooted in a person.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from deputize.keys.chain import HARD_MAX_DEPTH, Chain
from deputize.verifier.errors import ChainPolicyError


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainPolicy:
    max_depth: int = HARD_MAX_DEPTH
    """Most actors a chain may have (0: only tokens nobody acts through)."""
    allowed_actors: Collection[str] | None = None
    """When set, every actor anywhere in the chain must be one of these."""
    blocked_actors: Collection[str] = ()
    """No actor anywhere in the chain may be one of these.  Both lists also apply to the
    token's ``client_id``, so a client cannot slip past them with its own token."""
    require_human_root: bool = False
    """Refuse a client's own token (``client_credentials``: ``sub`` = ``client_id``, no ``act``);
    only chains acting for a person pass."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_depth <= HARD_MAX_DEPTH:
            raise ValueError(f"max_depth must be from 0 to {HARD_MAX_DEPTH}")
        # Frozen sets: membership tests on the hot path, and no caller can mutate them later.
        if self.allowed_actors is not None:
            object.__setattr__(self, "allowed_actors", frozenset(self.allowed_actors))
        object.__setattr__(self, "blocked_actors", frozenset(self.blocked_actors))

    def check(self, chain: Chain, claims: Mapping[str, Any]) -> None:
        if chain.depth > self.max_depth:
            raise ChainPolicyError(
                f"delegation chain has {chain.depth} actors; this resource allows {self.max_depth}"
            )
        parties = list(chain.actors)
        client_id = claims.get("client_id")
        if isinstance(client_id, str) and client_id not in parties:
            parties.append(client_id)  # a client's own token: the client acts for itself
        # Two set operations rather than a test per actor (__post_init__ made both frozensets);
        # only a refusal walks the parties, to name the first one refused.
        blocked: frozenset[str] = self.blocked_actors  # type: ignore[assignment]
        allowed: frozenset[str] | None = self.allowed_actors  # type: ignore[assignment]
        if not blocked.isdisjoint(parties) or (
            allowed is not None and not allowed.issuperset(parties)
        ):
            self._refuse(parties)
        own_token = not chain.actors and claims.get("client_id") == chain.subject
        if self.require_human_root and own_token:
            raise ChainPolicyError("this resource needs a token acting for a person")

    def _refuse(self, parties: list[str]) -> None:
        """Raise for the first party, in chain order, that is blocked or not allowed."""
        for actor in parties:
            if actor in self.blocked_actors:
                raise ChainPolicyError(f"actor {actor!r} may not act at this resource")
            if self.allowed_actors is not None and actor not in self.allowed_actors:
                raise ChainPolicyError(f"actor {actor!r} is not allowed at this resource")
