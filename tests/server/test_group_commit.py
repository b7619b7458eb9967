"""Group commit (storage/group_commit.py): requests in one batch succeed or fail on their own.

PostgreSQL only (SQLite has no hot path).  The requests here are built with the hot path's
own store, the way the token endpoint builds them, and applied in one batch.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import pytest
from delegation_support import claims_of, start, start_chain

from deputize.server.storage import audit
from deputize.server.storage.batched import BatchedStore, Conflict
from deputize.server.storage.database import Database
from deputize.server.storage.group_commit import GroupCommit, HotPathStats
from deputize.server.storage.tokens import DELEGATION, TokenRecord

from support import ServerFactory

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _request(
    pool: asyncpg.Pool,
    commit: GroupCommit,
    *,
    keys: list[str],
    parent: str,
    subject: str = "alice",
) -> tuple[BatchedStore, str]:
    """One request's deferred writes, made through the store as the token endpoint makes them:
    its one-time values, the lineage it extends, the new token and its audit entry."""
    store = BatchedStore(pool, commit)
    now = int(time.time())
    jti = secrets.token_urlsafe(16)
    for key in keys:
        await store.remember(key, now + 300)
    await store.hold_lineage(parent)
    await store.record(
        TokenRecord(jti=jti, client_id="agent-a", subject=subject, issued_at=now,
                    expires_at=now + 60, parent_jti=parent, kind=DELEGATION, actor="agent-a")
    )  # fmt: skip
    await store.audit(audit.AuditEvent(audit.TOKEN_ISSUED, client_id="agent-a", jti=jti), now)
    return store, jti


def test_each_request_of_a_batch_stands_or_falls_alone(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    parent = claims_of(start_chain(server))["jti"]
    url = server.settings.async_database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> tuple[list[object], HotPathStats, list[str]]:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        stats = HotPathStats()
        commit = GroupCommit(pool, stats, in_flight=1)
        try:
            used = f"used:{secrets.token_hex(8)}"
            first, _ = await _request(pool, commit, keys=[used], parent=parent)
            await first.commit()
            shared = f"shared:{secrets.token_hex(8)}"
            requests = [
                await _request(pool, commit, keys=[shared], parent=parent),  # first to use it
                await _request(pool, commit, keys=[shared], parent=parent),  # same batch: replay
                await _request(pool, commit, keys=[used], parent=parent),  # used before: replay
                await _request(pool, commit, keys=["nul"], parent=parent, subject="a\x00b"),
                await _request(pool, commit, keys=["orphan"], parent="no-such-token"),
                await _request(pool, commit, keys=["fine"], parent=parent),
            ]
            outcomes = await asyncio.gather(
                *(store.commit() for store, _ in requests), return_exceptions=True
            )
            return list(outcomes), stats, [jti for _, jti in requests]
        finally:
            await pool.close()

    outcomes, stats, jtis = asyncio.run(run())
    assert outcomes[0] is None and outcomes[5] is None
    assert isinstance(outcomes[1], Conflict)  # a one-time value used earlier in the batch
    assert isinstance(outcomes[2], Conflict)  # a one-time value used in an earlier batch
    # A value PostgreSQL refuses (NUL in text) fails its own request only, not as a conflict.
    assert isinstance(outcomes[3], asyncpg.PostgresError)
    assert isinstance(outcomes[4], Conflict)  # its lineage does not exist
    assert stats.conflicts == 3

    async def stored() -> tuple[set[str], audit.Verification]:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                rows = await conn.exec_driver_sql(
                    "SELECT jti FROM issued_tokens WHERE jti = ANY($1)", (jtis,)
                )
                return {row[0] for row in rows}, await audit.verify(conn)
        finally:
            await db.dispose()

    ledger, verification = asyncio.run(stored())
    assert ledger == {jtis[0], jtis[5]}  # nothing of the refused requests was written
    assert verification.ok, verification.problems


def test_a_request_right_after_another_is_applied(server_factory: ServerFactory) -> None:
    """One flusher at a time: the second request is queued the moment the first one's flusher
    finds the queue empty, before that flusher's task has finished; it must not wait for a
    third request to come along."""
    server = start(server_factory)
    parent = claims_of(start_chain(server))["jti"]
    url = server.settings.async_database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> HotPathStats:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        stats = HotPathStats()
        commit = GroupCommit(pool, stats, in_flight=1)
        try:
            for n in range(5):
                store, _ = await _request(
                    pool, commit, keys=[f"seq-{n}:{secrets.token_hex(8)}"], parent=parent
                )
                async with asyncio.timeout(30):  # no new task: wait_for would hide the gap
                    await store.commit()
            return stats
        finally:
            await pool.close()

    stats = asyncio.run(run())
    assert (stats.applied, stats.batches, stats.conflicts) == (5, 5, 0)
