"""The one-time-use cache: DPoP proof ``jti`` (RFC 9449 §11.1) and client assertion ``jti``
(RFC 7523 §3 item 7).  Exact across instances, because the database's primary key decides."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import replay_cache


async def remember(conn: AsyncConnection, key: str, expires_at: int) -> bool:
    """Record ``key`` until ``expires_at``; False if it is already recorded (a replay).

    Uses INSERT ... ON CONFLICT DO NOTHING so a replay does not abort the surrounding
    transaction.  An expired row left behind by a late purge still counts: callers reject
    stale inputs by their own timestamps long before the row could be purged.
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(replay_cache).values(key=key, expires_at=expires_at).on_conflict_do_nothing()
    result = await conn.execute(stmt)
    return result.rowcount == 1


async def purge(conn: AsyncConnection, now: int) -> int:
    result = await conn.execute(delete(replay_cache).where(replay_cache.c.expires_at < now))
    return result.rowcount
