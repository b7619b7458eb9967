"""A bounded, in-memory cache of validated document clients, honouring ``Cache-Control``.

The draft (-00 §4.4, "Metadata Caching") lets the authorization server cache a document,
following HTTP caching (RFC 9111), and never an error response.  Here: ``no-store``,
``no-cache``, ``private`` (we are a shared cache) and ``max-age=0`` keep it out; a
``max-age`` is clamped to ``[cache_min_seconds, cache_max_seconds]``; without one it is kept
``cache_min_seconds``.  At most ``cache_entries`` clients, least recently used first out.
Per process: each instance fetches for itself, which the deadline and size cap keep cheap.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from deputize.server.settings import ClientConfig


def lifetime(cache_control: str, *, low: int, high: int) -> int:
    """Seconds to keep a document served with ``cache_control`` (0: do not keep it)."""
    ages: dict[str, int] = {}
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip()
        if name in ("no-store", "no-cache", "private"):
            return 0
        if name in ("max-age", "s-maxage"):
            value = value.strip().strip('"')
            if not (value.isascii() and value.isdigit()):
                return 0  # a malformed directive: do not guess (RFC 9111 §4.2.1)
            ages[name] = int(value[:12])
    max_age = ages.get("s-maxage", ages.get("max-age"))  # s-maxage: for shared caches, as we are
    if max_age == 0:
        return 0
    if max_age is None:
        return low
    return max(low, min(high, max_age))


@dataclass(slots=True)
class _Entry:
    client: ClientConfig
    expires_at: float


class DocumentCache:
    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, client_id: str, now: float) -> ClientConfig | None:
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[client_id]
            return None
        self._entries.move_to_end(client_id)
        return entry.client

    def put(self, client: ClientConfig, now: float, seconds: int) -> None:
        if seconds <= 0 or self._max_entries <= 0:
            self._entries.pop(client.client_id, None)
            return
        self._entries[client.client_id] = _Entry(client, now + seconds)
        self._entries.move_to_end(client.client_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
