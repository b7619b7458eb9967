"""A bounded, short-lived memory of lookups that found nothing."""

from __future__ import annotations

from typing import Final

_DEFAULT_SIZE: Final = 4096


class RecentMisses:
    """Names recently looked up and not found, each remembered for ``ttl`` seconds.

    Only for lookups where a stale "not found" is harmless: the token exchange asks whether
    each ``audience`` value names a registered agent, and almost every value is a resource URI.
    Bounded: when full, the oldest half is forgotten.
    """

    __slots__ = ("_expiry", "_size", "_ttl")

    def __init__(self, ttl: float, size: int = _DEFAULT_SIZE) -> None:
        self._ttl = ttl
        self._size = size
        self._expiry: dict[str, float] = {}

    def seen(self, name: str, now: float) -> bool:
        expiry = self._expiry.get(name)
        if expiry is None:
            return False
        if expiry <= now:
            del self._expiry[name]
            return False
        return True

    def add(self, name: str, now: float) -> None:
        if len(self._expiry) >= self._size:
            for old in list(self._expiry)[: self._size // 2]:
                del self._expiry[old]
        self._expiry.pop(name, None)
        self._expiry[name] = now + self._ttl
