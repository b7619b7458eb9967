"""Token status list (draft-ietf-oauth-status-list): revocation that resource servers see
without calling Deputize per request.

Every token usable at a resource server carries
``"status": {"status_list": {"idx": N, "uri": "<issuer>/statuslists/<L>"}}``.  Index
allocation costs minting no database round trip: each process reserves a block of
:data:`BLOCK` indexes at a time (one ``UPDATE ... RETURNING`` on ``status_list_allocator``),
refilled in the background when half used.  The index is stored on the token's ledger row, so
every revocation path — by token, task, client or user, and the cascade to descendants — shows
in the list with no extra work: a list is built from the ledger's revoked rows.

A list (:data:`LIST_SIZE` one-bit entries; global index ``i`` is entry ``i % LIST_SIZE`` of list
``i // LIST_SIZE``) is built and signed lazily, when requested, and reused for
``status_list.server_cache`` seconds.  Its token says ``ttl: status_list.ttl``, so a
revocation reaches a verifier that honours ``ttl`` within ``server_cache + ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from deputize.keys import sign
from deputize.keys._b64 import b64url_encode
from deputize.server.keyring import Keyring
from deputize.server.settings import Settings
from deputize.server.storage import status_list as storage
from deputize.server.storage.database import Database
from deputize.server.storage.outage import unavailable_cause
from deputize.server.storage.request_store import RequestStore

TYP: Final = "statuslist+jwt"
MEDIA_TYPE: Final = "application/statuslist+jwt"
LIST_SIZE: Final = 1 << 20
BLOCK: Final = 1024
PATH: Final = "/statuslists/"
#: How many built lists are kept; each is a few hundred bytes once signed.
_MAX_CACHED: Final = 16

logger = logging.getLogger("deputize.server")


def list_uri(issuer: str, number: int) -> str:
    return f"{issuer}{PATH}{number}"


def status_claim(issuer: str, index: int) -> dict[str, Any]:
    """The referenced token's ``status`` claim for global index ``index``."""
    return {"status_list": {"idx": index % LIST_SIZE, "uri": list_uri(issuer, index // LIST_SIZE)}}


class StatusAllocator:
    """Hands out status list indexes from blocks this process reserved."""

    def __init__(self, db: Database, *, block: int = BLOCK) -> None:
        self._db = db
        self._block = block
        self._ranges: deque[list[int]] = deque()  # [next, end) pairs
        self._refill: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Reserve the first block before serving (no request transaction is open yet)."""
        await self._reserve_block()

    def _remaining(self) -> int:
        return sum(end - start for start, end in self._ranges)

    async def _reserve_block(self) -> None:
        async with self._db.begin() as conn:
            start = await storage.reserve(conn, self._block)
        self._ranges.append([start, start + self._block])

    async def _refill_in_background(self) -> None:
        try:
            await self._reserve_block()
        except Exception as exc:  # the next allocation falls back to its own transaction
            cause = unavailable_cause(exc)
            if cause is None:
                logger.exception("reserving status list indexes failed")
            else:
                self._db.outages.report(cause)
        finally:
            self._refill = None

    async def allocate(self, store: RequestStore) -> int:
        """One fresh index.  ``store`` is the request's, used only if no reserved index is left
        (a burst outran the background refill): then one index is reserved through it, in the
        request's transaction, so a rollback cannot hand that index out twice."""
        while self._ranges and self._ranges[0][0] >= self._ranges[0][1]:
            self._ranges.popleft()
        if self._refill is None and self._remaining() < self._block // 2:
            # A separate transaction, never the request's: on SQLite the request holds the
            # write lock, so the refill runs after it commits.
            self._refill = asyncio.create_task(self._refill_in_background())
        if not self._ranges:
            return await store.reserve_status_index()
        current = self._ranges[0]
        index = current[0]
        current[0] += 1
        return index

    async def stop(self) -> None:
        if self._refill is not None:
            await asyncio.gather(self._refill, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Built:
    token: bytes
    built_at: float


class StatusListPublisher:
    """Builds, signs and caches status list tokens."""

    def __init__(self, settings: Settings, db: Database, keyring: Keyring) -> None:
        self._settings = settings
        self._db = db
        self._keyring = keyring
        self._cache: dict[int, _Built] = {}
        self._lock = asyncio.Lock()

    async def token(self, number: int, now: float) -> bytes | None:
        """The signed list ``number``, or None if no index of it was ever handed out."""
        cached = self._cache.get(number)
        if cached is not None and now - cached.built_at < self._settings.status_list_server_cache:
            return cached.token
        async with self._lock:  # one build at a time; a burst of requests shares it
            cached = self._cache.get(number)
            if cached is not None and (
                now - cached.built_at < self._settings.status_list_server_cache
            ):
                return cached.token
            low = number * LIST_SIZE
            async with self._db.begin() as conn:
                if low >= await storage.high_water(conn):
                    return None
                revoked = await storage.revoked(conn, low, low + LIST_SIZE)
            token = self._sign(number, [i - low for i in revoked], int(now))
            self._cache.pop(number, None)
            self._cache[number] = _Built(token, now)
            while len(self._cache) > _MAX_CACHED:
                del self._cache[next(iter(self._cache))]
            return token

    def _sign(self, number: int, revoked: list[int], now: int) -> bytes:
        bits = bytearray(LIST_SIZE // 8)
        for idx in revoked:
            bits[idx // 8] |= 1 << (idx % 8)  # least significant bit first
        ttl = self._settings.status_list_ttl
        claims: Mapping[str, Any] = {
            "iss": self._settings.issuer,
            "sub": list_uri(self._settings.issuer, number),
            "iat": now,
            # Past exp a verifier stops trusting a list it could not refresh (fails closed).
            "exp": now + min(10 * ttl, 86_400),
            "ttl": ttl,
            "status_list": {"bits": 1, "lst": b64url_encode(zlib.compress(bytes(bits), 9))},
        }
        return sign(claims, self._keyring.view.active, typ=TYP).encode("ascii")
