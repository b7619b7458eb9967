"""RFC 9396 ``authorization_details`` at ``/authorize`` and ``/par``: parsed against the
delegation policy's types before anything else, then — once the person has signed in —
decided for them, so nobody is asked to allow what the policy would refuse at the token
endpoint.  An app's details are bounded by the person's roles and the conditions; an agent's
also by its profile and the tiers (a ``supervised`` entry is refused naming the tier: no
agent holds it without a person's approval of that action).  A refusal is audited as a
``decision``, with the rule."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.keys.chain import AttenuationError
from deputize.server.context import ServerContext
from deputize.server.delegation.permissions import Person, allow, profile_of
from deputize.server.delegation.signin_details import NO_TYPES, normalised, parse_param
from deputize.server.endpoints.decide import DECISION
from deputize.server.errors import InvalidAuthorizationDetailsError, OAuthError
from deputize.server.settings import ClientConfig
from deputize.server.storage import audit, users


def requested_details(ctx: ServerContext, text: str) -> list[dict[str, Any]]:
    """The parameter's entries, normalised; ``invalid_authorization_details`` (RFC 9396 §5)
    when malformed, of an undeclared type, or when no policy declares any type."""
    source = ctx.settings.policy
    if source is None:
        raise InvalidAuthorizationDetailsError(NO_TYPES)
    try:
        return normalised(parse_param(text, source.policy), source.policy)
    except AttenuationError as exc:
        raise InvalidAuthorizationDetailsError(exc.description) from None


async def decided_details(
    ctx: ServerContext,
    conn: AsyncConnection,
    client: ClientConfig,
    sub: str,
    details: list[dict[str, Any]],
    now: int,
) -> list[dict[str, Any]]:
    """``details`` as the policy lets ``sub`` hand them to ``client``, or the refusal."""
    source = ctx.settings.policy
    if source is None:  # reloaded away since the request was parsed
        raise InvalidAuthorizationDetailsError(NO_TYPES)
    user = await users.get(conn, sub)
    person = Person(sub, () if user is None else user.roles)
    agents = [profile_of(client, client.client_id)] if client.agent else []
    try:
        allowed = allow(
            source.policy, person, agents, scopes=[], explicit_scopes=False,
            requested_details=None, parent_details=details, task=None,
        )  # fmt: skip
    except OAuthError as exc:
        await audit.append(
            conn,
            audit.AuditEvent(
                event=DECISION, client_id=client.client_id, subject=sub, actors=agents,
                reason=f"deny: {exc.description}",
                details={"endpoint": "authorize", "policy": source.policy.hash},
            ),
            now,
        )  # fmt: skip
        raise
    assert allowed.details is not None  # parent details given: never None
    return allowed.details
