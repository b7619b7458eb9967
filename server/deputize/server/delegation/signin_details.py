"""RFC 9396 ``authorization_details`` of a sign-in: asked for at ``/authorize`` (or ``/par``),
shown to and allowed by the person, kept with the consent, the code and the refresh token.

The token requests that follow may only narrow them (RFC 9396 §6.1 for the code, §6.2 for a
refresh): every entry asked for there must be covered by one the person allowed — the one rule
of every hop, :func:`deputize.keys.details.check_attenuation`.  Types come from the delegation
policy; without one, no type is declared and the parameter is refused, never ignored.
"""

from __future__ import annotations

from typing import Any

from deputize.keys._json import loads
from deputize.keys.chain import AttenuationError
from deputize.keys.details import ERROR, Detail, check_attenuation, parse_details
from deputize.keys.policy import Policy
from deputize.server.errors import InvalidAuthorizationDetailsError

#: Bounds on the ``authorization_details`` parameter before it is parsed (RFC 9396 §2).
MAX_DETAILS_CHARS = 8192
NO_TYPES = "this server declares no authorization_details types (no delegation policy)"


def parse_param(text: str, policy: Policy) -> tuple[Detail, ...]:
    """The parameter's entries, parsed against the policy's types and normalised; raises
    :class:`AttenuationError` (``invalid_authorization_details``) naming what is wrong."""
    if len(text) > MAX_DETAILS_CHARS:
        raise AttenuationError(
            f"authorization_details is longer than {MAX_DETAILS_CHARS} characters", error=ERROR
        )
    try:
        value = loads(text)  # ValueError for nesting too deep, too
    except ValueError:
        raise AttenuationError("authorization_details is not JSON", error=ERROR) from None
    return parse_details(value, policy.types)


def normalised(entries: tuple[Detail, ...], policy: Policy) -> list[dict[str, Any]]:
    return [entry.to_json(policy.types[entry.type]) for entry in entries]


def narrow(
    asked: str | None, granted: list[dict[str, Any]] | None, policy: Policy | None
) -> list[dict[str, Any]] | None:
    """The details for this token request's access token: the granted ones, or the narrower
    ones asked for (RFC 9396 §6.1 / §6.2); ``invalid_authorization_details`` beyond them."""
    if asked is None:
        return granted
    if policy is None:
        raise InvalidAuthorizationDetailsError(NO_TYPES)
    if granted is None:
        raise InvalidAuthorizationDetailsError(
            "the authorization request asked for no authorization_details; ask for them there"
        )
    try:
        entries = parse_param(asked, policy)
        check_attenuation(parse_details(granted, policy.types), entries, policy.types)
    except AttenuationError as exc:
        raise InvalidAuthorizationDetailsError(exc.description) from None
    return normalised(entries, policy)


def covered(
    allowed: list[dict[str, Any]] | None, asked: list[dict[str, Any]] | None, policy: Policy | None
) -> bool:
    """Whether a consent's details cover a request's (so the person need not be asked again).
    Details the policy can no longer read are covered by nothing: the person is asked."""
    if asked is None:
        return True
    if allowed is None or policy is None:
        return False
    try:
        check_attenuation(
            parse_details(allowed, policy.types), parse_details(asked, policy.types), policy.types
        )
    except AttenuationError:
        return False
    return True
