"""Group commit: the writes of every token request that is ready go to PostgreSQL together.

Each successful request on the hot path (``storage/batched.py``) ends with a handful of writes
that must commit durably before its response is sent.  One transaction per request costs
PostgreSQL a commit, a function call and a dozen statements, and costs this process a round
trip; most of that is per transaction, not per row.  So requests that finish while an earlier
batch is in flight queue up here, and the next batch takes them all: one call of
``deputize_apply_batch`` (migration 0006), one transaction, one WAL flush.  Every request
still gets its response only after its own writes have committed, and a request's writes
never commit without the rest of its own writes.

A check that fails inside the function names the first request it fails (SQLSTATE class DZ,
``DETAIL`` = its index): that request gets :class:`Conflict` — the endpoint then decides it
again on an ordinary transaction, which refuses it with the usual error — and the batch is
applied again without it.  Any other database error (a value PostgreSQL will not store, say)
is pinned on its request by applying the batch's requests one by one, so one bad request
never fails the others.  An error that says the database itself is unavailable
(``storage/outage.py``) fails the batch and every request still queued at once: sending them
one by one to a database that does not answer would make each wait its own timeout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from deputize.keys._json import dumps
from deputize.server.storage.outage import unavailable_cause

#: SQLSTATE class of the errors ``deputize_apply_batch`` raises on purpose.
_CONFLICT_CLASS: Final = "DZ"
_APPLY: Final = "SELECT deputize_apply_batch($1::jsonb)"


class Conflict(Exception):
    """A deferred write was refused; the request must be decided on an ordinary transaction."""


@dataclass(slots=True)
class HotPathStats:
    """How the hot path's writes went: requests committed, refused, and batches sent."""

    applied: int = 0
    conflicts: int = 0
    batches: int = 0


Item = list[Any]
_Waiting = tuple[Item, "asyncio.Future[None]"]


class GroupCommit:
    """Queues requests' writes and applies them in batches, at most ``in_flight`` at a time.

    With no load a request is applied at once, alone; under load, batches grow to whatever
    arrived during the previous round trip (at most ``max_batch``), so the cost per request
    falls as the load rises.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        stats: HotPathStats,
        *,
        max_batch: int = 64,
        in_flight: int = 2,
        pool_timeout: float | None = None,
    ) -> None:
        self._pool = pool
        self._pool_timeout = pool_timeout
        self._stats = stats
        self._max_batch = max_batch
        self._max_in_flight = in_flight
        self._queue: deque[_Waiting] = deque()
        self._flushers: set[asyncio.Task[None]] = set()  # kept referenced until done
        self._running = 0

    async def apply(self, item: Item) -> None:
        """Commit ``item``'s writes; :class:`Conflict` if the database refuses one of them."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if self._running < self._max_in_flight:
            # Counted here and uncounted by the flusher itself the moment it finds the queue
            # empty: a count taken from finished tasks would lag until their callbacks ran,
            # and a request queued in that gap could wait with no flusher to take it.
            self._running += 1
            task = asyncio.create_task(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        # If this request is cancelled now (its client went away), so is ``done``; its batch
        # commits regardless, and _settle leaves a cancelled future alone.
        await done

    async def drain(self) -> None:
        """Wait for every queued write (at shutdown)."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

    async def _flush(self) -> None:
        try:
            while self._queue:
                size = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(size)]
                try:
                    await self._apply(batch)
                except Exception as exc:  # the connection broke, say: its requests fail
                    if unavailable_cause(exc) is not None:
                        # So would the queued ones, each after its own wait: fail them now.
                        batch.extend(self._queue)
                        self._queue.clear()
                    for _, done in batch:
                        _settle(done, exc)
                except BaseException:  # shutting down: decided on the ordinary path, if at all
                    for _, done in (*batch, *self._queue):
                        _settle(done, Conflict("cancelled"))
                    self._queue.clear()
                    raise
        finally:
            self._running -= 1

    async def _apply(self, batch: list[_Waiting]) -> None:
        while batch:
            try:
                await self._send([item for item, _ in batch])
            except asyncpg.PostgresError as exc:
                index = _refused_index(exc, len(batch))
                if index is not None:
                    self._stats.conflicts += 1
                    _settle(batch.pop(index)[1], Conflict(str(exc)))
                    continue
                if unavailable_cause(exc) is not None:
                    raise  # the database failed, not a request: _flush fails them all
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    return
                for one in batch:  # find the request the database would not take
                    await self._apply([one])
                return
            self._stats.applied += len(batch)
            for _, done in batch:
                _settle(done)
            return

    async def _send(self, items: list[Item]) -> None:
        payload = dumps(items).decode("utf-8")  # asyncpg takes jsonb as text
        async with asyncio.timeout(self._pool_timeout):  # a timer, not the task acquire() makes
            conn = await self._pool.acquire()
        try:
            await conn.execute(_APPLY, payload)  # bounded by the pool's command_timeout
        finally:
            await self._pool.release(conn)
        self._stats.batches += 1


def _settle(done: asyncio.Future[None], error: Exception | None = None) -> None:
    if done.done():  # cancelled by its request, or settled already
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _refused_index(exc: asyncpg.PostgresError, size: int) -> int | None:
    """The index of the request a deliberate refusal (class DZ) names, if it names one."""
    if not str(getattr(exc, "sqlstate", "")).startswith(_CONFLICT_CLASS):
        return None
    try:
        index = int(getattr(exc, "detail", None) or "")
    except ValueError:
        return None
    return index if 0 <= index < size else None
