"""Delegation chains (RFC 8693 §4.1 ``act``) and the attenuation rules every hop obeys.

One set of pure functions, used when Deputize mints a delegated token and when a resource
server verifies one, so the two sides cannot drift.

A chain is the human at the root (``sub``) and the actors who acted for them, oldest first.
In the token the *current* actor is the outermost ``act`` and earlier actors nest inside it:
alice → A → B is ``{"sub": "alice", "act": {"sub": "B", "act": {"sub": "A"}}}``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from deputize.keys.errors import InvalidClaimsError, JoseError

#: No chain may be deeper than this, whatever the configuration says: it bounds parsing work
#: and token size.
HARD_MAX_DEPTH: Final = 16
_MAX_ID: Final = 255


class AttenuationError(JoseError):
    """A requested hop would give the child more than its parent had, or break a chain rule.

    ``error`` is the OAuth code the token endpoint answers with.
    """

    def __init__(self, description: str, *, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.error = error


@dataclass(frozen=True, slots=True)
class Chain:
    subject: str
    """The principal at the root: the person the whole chain acts for."""
    actors: tuple[str, ...] = ()
    """The actors, oldest first; the last one is acting now."""

    @property
    def depth(self) -> int:
        return len(self.actors)

    @property
    def current_actor(self) -> str | None:
        return self.actors[-1] if self.actors else None

    def act_claim(self) -> dict[str, Any] | None:
        """The nested ``act`` claim for this chain (None when nobody acts for the subject)."""
        act: dict[str, Any] | None = None
        for actor in self.actors:  # oldest innermost
            act = {"sub": actor} if act is None else {"sub": actor, "act": act}
        return act

    def extend(self, actor: str, *, max_depth: int) -> Chain:
        """The chain with ``actor`` acting next; refuses cycles and chains over ``max_depth``."""
        if not actor or len(actor) > _MAX_ID:
            raise AttenuationError("actor identifier is empty or too long")
        if actor in self.actors:
            raise AttenuationError(
                f"{actor!r} already acts in this chain; an agent may appear only once",
                error="invalid_request",
            )
        if actor == self.subject:
            raise AttenuationError("the subject cannot act for itself", error="invalid_request")
        if len(self.actors) + 1 > min(max_depth, HARD_MAX_DEPTH):
            raise AttenuationError(
                f"delegation depth would exceed the maximum of {min(max_depth, HARD_MAX_DEPTH)}",
                error="invalid_request",
            )
        return Chain(self.subject, (*self.actors, actor))


def parse_chain(claims: Mapping[str, Any]) -> Chain:
    """Read ``sub`` and the nested ``act`` claims of a verified token.

    Refuses malformed nesting, over-deep chains and an actor that appears twice.
    """
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > _MAX_ID:
        raise InvalidClaimsError("missing or malformed 'sub' claim")
    newest_first: list[str] = []
    act = claims.get("act")
    while act is not None:
        # A JSON object is a dict: testing the exact type first spares the slower ABC check.
        if type(act) is not dict and not isinstance(act, Mapping):
            raise InvalidClaimsError("'act' claim must be a JSON object")
        actor = act.get("sub")
        if not isinstance(actor, str) or not actor or len(actor) > _MAX_ID:
            raise InvalidClaimsError("every 'act' needs a string 'sub'")
        newest_first.append(actor)
        if len(newest_first) > HARD_MAX_DEPTH:
            raise InvalidClaimsError("delegation chain is too deep")
        act = act.get("act")
    newest_first.reverse()
    actors = tuple(newest_first)
    if len(set(actors)) != len(actors) or subject in actors:
        raise InvalidClaimsError("an actor appears twice in the delegation chain")
    return Chain(subject, actors)


# --- attenuation: what a child token may have, given its parent ------------------------------


def attenuate_scopes(
    parent: Collection[str],
    requested: Sequence[str] | None,
    *,
    allowed: Collection[str],
    forbidden: Collection[str] = (),
) -> list[str]:
    """scope(child) ⊆ scope(parent) ∩ allowed, minus forbidden.

    Asking for anything outside that is ``invalid_scope``: never silently narrowed.  Without a
    request the child gets the whole intersection.
    """
    ceiling = [s for s in parent if s in allowed and s not in forbidden]
    if requested is None:
        return ceiling
    refused = [s for s in requested if s not in ceiling]
    if refused:
        raise AttenuationError(
            "scope exceeds what the parent token and this client allow: " + " ".join(refused),
            error="invalid_scope",
        )
    return list(dict.fromkeys(requested))


def attenuate_audience(parent: Sequence[str], requested: Sequence[str]) -> list[str]:
    """aud(child) ⊆ aud(parent): audience and resource only ever narrow (``invalid_target``)."""
    if not requested:
        return list(parent)
    outside = [a for a in requested if a not in parent]
    if outside:
        raise AttenuationError(
            "audience is not within the parent token's audience: " + " ".join(outside),
            error="invalid_target",
        )
    return list(dict.fromkeys(requested))


def attenuate_expiry(
    parent_exp: int, *, now: int, lifetime: int, ceiling: int | None = None
) -> int:
    """exp(child) = min(now + lifetime, exp(parent), now + ceiling): never outlives its parent."""
    exp = min(now + lifetime, parent_exp)
    if ceiling is not None:
        exp = min(exp, now + ceiling)
    if exp <= now:
        raise AttenuationError("the parent token has expired", error="invalid_request")
    return exp


def audience_list(claims: Mapping[str, Any]) -> list[str]:
    """The ``aud`` claim as a list (RFC 7519 allows a string or an array)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return list(aud)
    raise InvalidClaimsError("missing or malformed 'aud' claim")


def scope_list(claims: Mapping[str, Any]) -> list[str]:
    """The ``scope`` claim split on spaces (RFC 8693 §4.2); empty when absent."""
    scope = claims.get("scope")
    if scope is None:
        return []
    if not isinstance(scope, str):
        raise InvalidClaimsError("'scope' claim must be a string")
    return list(filter(None, scope.split(" ")))  # drops the empty strings double spaces make
