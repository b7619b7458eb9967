"""Scope and resource (audience) selection: one place for the rules every grant applies."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from deputize.server.errors import InvalidScopeError, InvalidTargetError
from deputize.server.http.form import Form
from deputize.server.settings import ClientConfig, Settings


def forbidden_for(client: ClientConfig, settings: Settings) -> frozenset[str]:
    """``delegation.forbidden_agent_scopes`` when ``client`` is an agent, else nothing: scopes
    never issued to an agent by any grant (client credentials, authorization code, refresh,
    exchange, hand-off redemption), whatever its registration or a parent token allows.
    ``check-config`` refuses such a registration; a client registered at runtime before the
    setting changed may still carry one, so every grant applies this too."""
    return frozenset(settings.forbidden_agent_scopes) if client.agent else frozenset()


def parse_scope(value: str | None) -> list[str] | None:
    """RFC 6749 §3.3: space-delimited, case-sensitive, order irrelevant, no duplicates kept."""
    if value is None:
        return None
    scopes = value.split(" ")
    # Per scope token: not empty, printable, no '"' or '\\' (a space is printable, so the
    # whole value is printable exactly when every token is).
    if "" in scopes or '"' in value or "\\" in value or not value.isprintable():
        raise InvalidScopeError("malformed scope parameter")
    return list(dict.fromkeys(scopes))


def select_scopes(requested: list[str] | None, allowed: Sequence[str]) -> list[str]:
    """Every requested scope must be allowed (never silently narrowed); none asked = all allowed."""
    if requested is None:
        return list(allowed)
    refused = [scope for scope in requested if scope not in allowed]
    if refused:
        raise InvalidScopeError(f"scope not allowed for this client: {' '.join(refused)}")
    return requested


def _check_resource(resource: str) -> None:
    """RFC 8707 §2: "Its value MUST be an absolute URI ... MUST NOT include a fragment"."""
    try:
        parts = urlsplit(resource)
    except ValueError:  # e.g. an unclosed IPv6 literal
        raise InvalidTargetError("resource is not a valid URI") from None
    if not parts.scheme or parts.fragment or "#" in resource:
        raise InvalidTargetError("resource must be an absolute URI without a fragment")


def select_audience(form: Form, allowed: Sequence[str], default: str) -> list[str]:
    """RFC 8707 §2: each ``resource`` is an absolute URI without fragment, and must be allowed."""
    requested = form.get_all("resource")
    if not requested:
        return list(allowed) if allowed else [default]
    for resource in requested:
        _check_resource(resource)
        if resource not in allowed:
            raise InvalidTargetError("resource not allowed for this client")
    return list(dict.fromkeys(requested))


def narrow_audience(
    form: Form, granted: Sequence[str], client: ClientConfig, settings: Settings
) -> list[str]:
    """The ``aud`` of an access token issued from a sign-in (authorization code or refresh).

    ``granted`` holds the ``resource`` values of the authorization request, stored with the code
    and the refresh token.  With no ``resource`` at the token request the token is for all of
    them (or, when the authorization request named none, the client's audiences, else the
    issuer).  RFC 8707 §2.2: the token request may name ``resource`` values again, to get a
    token for fewer of them; each must be among those the grant allowed (the same fallback
    when it named none), else ``invalid_target``.  Never wider than the sign-in: the refresh
    token keeps the grant's resources whatever one access token is narrowed to.
    """
    allowed = list(granted) or list(client.audiences) or [settings.issuer]
    requested = form.get_all("resource")
    if not requested:
        return allowed
    for resource in requested:
        _check_resource(resource)
        if resource not in allowed:
            raise InvalidTargetError("resource was not in the authorization request")
    return list(dict.fromkeys(requested))
