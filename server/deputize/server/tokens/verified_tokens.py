"""A bounded cache of our own access tokens whose signatures have been verified."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class VerifiedTokens:
    """Our own tokens whose signature, ``typ``, ``iss`` and ``jti`` have been checked, by the
    exact token string: a bounded cache, emptied whenever the key set changes.

    An agent re-exchanges its parent token for every sub-task, so the same subject token comes
    back again and again; checking a byte-identical token's signature again would prove
    nothing new.  The checks that depend on the time (``exp``, ``nbf``, ``iat``) and on the
    ledger (revocation) still run on every use.  The claims are shared: read-only.

    Beside the claims, a caller may keep what it derives from them (:meth:`remember_derived`),
    so a token presented again is also parsed once.  That value is handed back only with the
    very claims object it came from: once the claims are dropped (the key set changed, or the
    entry was evicted and the token verified again), it is ignored.
    """

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._view: object = None
        self._claims: dict[str, Mapping[str, Any]] = {}
        self._derived: dict[str, tuple[Mapping[str, Any], object]] = {}

    def get(self, token: str, view: object) -> Mapping[str, Any] | None:
        if view is not self._view:  # keys rotated or removed: verify everything again
            self._claims.clear()
            self._derived.clear()
            self._view = view
            return None
        return self._claims.get(token)

    def derived(self, token: str, claims: Mapping[str, Any]) -> object | None:
        """What was remembered for ``token`` with these very ``claims``, if anything."""
        entry = self._derived.get(token)
        return entry[1] if entry is not None and entry[0] is claims else None

    def remember_derived(self, token: str, claims: Mapping[str, Any], value: object) -> None:
        """Keep ``value`` (immutable: it is shared) beside ``token``'s claims."""
        if len(self._derived) >= self._size:
            del self._derived[next(iter(self._derived))]  # the oldest entry
        self._derived[token] = (claims, value)

    def put(self, token: str, claims: Mapping[str, Any]) -> None:
        if len(self._claims) >= self._size:
            del self._claims[next(iter(self._claims))]  # the oldest entry
        self._claims[token] = claims
