"""Fetching and caching JWK Sets published by others (client ``jwks_uri``, trusted issuers).

Bounded in entries and bytes; a cache miss on ``kid`` may refetch, but at most once per
``min_refetch`` seconds per URI, so a stream of tokens with made-up ``kid`` values cannot turn
into a stream of outbound requests.  Each fetch has one deadline for all of it (``deadline``
seconds), so a slow key server cannot hold up the requests waiting for its keys.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

import httpx

from deputize.keys import JoseError, KeySet
from deputize.keys._json import loads

MAX_JWKS_BYTES = 64 * 1024


class JWKSFetchError(Exception):
    pass


@dataclass(slots=True)
class _Entry:
    keys: KeySet
    fetched_at: float


class RemoteJWKS:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        ttl: float = 300,
        min_refetch: float = 30,
        max_entries: int = 256,
        deadline: float = 5,
    ) -> None:
        self._http = http
        self._deadline = deadline
        self._ttl = ttl
        self._min_refetch = min_refetch
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, uri: str, *, now: float, refresh: bool = False) -> KeySet:
        """The key set at ``uri``; ``refresh`` asks for a refetch, if the rate limit allows."""
        entry = self._entries.get(uri)
        if entry is not None and not self._stale(entry, now, refresh):
            self._entries.move_to_end(uri)
            return entry.keys
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:
            entry = self._entries.get(uri)
            if entry is not None and not self._stale(entry, now, refresh):
                return entry.keys
            try:
                keys = await self._fetch(uri)
            except JWKSFetchError:
                if entry is not None:
                    return entry.keys  # serve the last good set rather than fail closed on a blip
                raise
            self._entries[uri] = _Entry(keys, now)
            self._entries.move_to_end(uri)
            while len(self._entries) > self._max_entries:
                evicted, _ = self._entries.popitem(last=False)
                self._locks.pop(evicted, None)
            return keys

    def _stale(self, entry: _Entry, now: float, refresh: bool) -> bool:
        age = now - entry.fetched_at
        return age >= self._ttl or (refresh and age >= self._min_refetch)

    async def _fetch(self, uri: str) -> KeySet:
        # One deadline for the whole fetch: httpx's timeouts are per connect and per read, so a
        # server sending a byte every few seconds would otherwise hold this URI's lock, and
        # every request waiting on it, for as long as it liked.
        try:
            async with asyncio.timeout(self._deadline):
                async with self._http.stream(
                    "GET", uri, headers={"Accept": "application/json"}
                ) as resp:
                    if resp.status_code != 200:
                        raise JWKSFetchError(f"JWKS fetch returned HTTP {resp.status_code}")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise JWKSFetchError("JWKS document too large")
        except httpx.HTTPError as exc:
            raise JWKSFetchError(f"JWKS fetch failed: {type(exc).__name__}") from None
        except TimeoutError:
            raise JWKSFetchError(f"JWKS fetch took longer than {self._deadline} s") from None
        try:
            return KeySet.from_jwks(loads(body))
        except (ValueError, JoseError) as exc:
            raise JWKSFetchError("JWKS document is not a valid public key set") from exc
