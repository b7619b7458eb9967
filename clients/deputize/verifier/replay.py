"""RFC 9449 §11.1: each DPoP proof is accepted once, remembered in bounded memory.

A proof is acceptable only while its ``iat`` is within ``max_age`` of the clock, so its ``jti``
need be remembered only until then.  Entries arrive in roughly ``iat`` order, so expired ones
are dropped from the front.  When the cache is full of live entries it refuses new proofs
rather than forget one that could then be replayed: bounded memory, failing closed.
(With several resource-server processes, each remembers its own proofs; a proof replayed to
another process within the window is caught only if they share a cache — see docs/verifier.md.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from deputize.verifier.errors import InvalidDPoPProofError


class ReplayCache:
    def __init__(self, max_entries: int = 200_000) -> None:
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; False if it is already there (a replay).
        Raises :class:`InvalidDPoPProofError` when the cache is full of live entries."""
        with self._lock:
            seen = self._seen
            while seen:
                oldest, until = next(iter(seen.items()))
                if until > now and len(seen) < self._max:
                    break
                if until > now:  # full of live entries: refuse rather than forget one
                    raise InvalidDPoPProofError("too many recent DPoP proofs; retry shortly")
                del seen[oldest]
            if key in seen:
                return False
            seen[key] = expires_at
            return True
