"""Scopes in plain words, for the consent and account pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

OIDC_SCOPES: Final = ("openid", "profile", "email")
_KNOWN: Final = {
    "openid": "Know who you are (your user name)",
    "profile": "See your name",
    "email": "See your e-mail address",
}
_ACTIONS: Final = {
    "read": "See your {}",
    "write": "Change your {}",
    "send": "Send {} for you",
    "delete": "Delete your {}",
    "admin": "Administer your {}",
}


@dataclass(frozen=True, slots=True)
class ScopeWords:
    scope: str
    text: str


def describe(scope: str) -> ScopeWords:
    """``docs:read`` -> "See your docs"; unknown shapes name the permission as it is."""
    if scope in _KNOWN:
        return ScopeWords(scope, _KNOWN[scope])
    thing, sep, action = scope.partition(":")
    if sep and thing and action in _ACTIONS:
        return ScopeWords(scope, _ACTIONS[action].format(thing.replace("_", " ")))
    return ScopeWords(scope, f"Use the “{scope}” permission")


def describe_all(scopes: list[str] | tuple[str, ...]) -> list[ScopeWords]:
    return [describe(s) for s in scopes]
