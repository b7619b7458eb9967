"""Scopes in plain words, for the consent and account pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

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


@dataclass(frozen=True, slots=True)
class DetailWords:
    """One RFC 9396 entry as the consent and account pages show it."""

    type: str
    actions: str
    resources: list[str]
    limits: list[str]


def describe_details(details: list[dict[str, Any]] | None) -> list[DetailWords]:
    """Normalised ``authorization_details`` entries in words: the actions, the resources
    (whichever field the type names them in) and each limit, as "max_amount at most 500"."""
    shown: list[DetailWords] = []
    for entry in details or ():
        resources = [str(r) for k, v in entry.items() if isinstance(v, list) and k != "actions"
                     for r in v]  # fmt: skip
        limits = [f"{k.replace('_', ' ')} at most {v}" for k, v in entry.items()
                  if isinstance(v, int | float) and not isinstance(v, bool)]  # fmt: skip
        actions = ", ".join(str(a) for a in entry.get("actions", ()))
        shown.append(DetailWords(str(entry.get("type")), actions, resources, limits))
    return shown
