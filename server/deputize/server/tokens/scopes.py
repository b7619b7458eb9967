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


def select_audience(form: Form, allowed: Sequence[str], default: str) -> list[str]:
    """RFC 8707 §2: each ``resource`` is an absolute URI without fragment, and must be allowed."""
    requested = form.get_all("resource")
    if not requested:
        return list(allowed) if allowed else [default]
    for resource in requested:
        try:
            parts = urlsplit(resource)
        except ValueError:  # e.g. an unclosed IPv6 literal
            raise InvalidTargetError("resource is not a valid URI") from None
        if not parts.scheme or parts.fragment or "#" in resource:
            raise InvalidTargetError("resource must be an absolute URI without a fragment")
        if resource not in allowed:
            raise InvalidTargetError("resource not allowed for this client")
    return list(dict.fromkeys(requested))
