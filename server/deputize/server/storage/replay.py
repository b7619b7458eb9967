"""The one-time-use cache: DPoP proof ``jti`` (RFC 9449 §11.1) and client assertion ``jti``
(RFC 7523 §3 item 7).  Exact across instances, because the database's primary key decides."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import replay_cache

# Built once: the token endpoint runs these on every request.
_INSERT_PG = postgresql.insert(replay_cache).on_conflict_do_nothing()
_INSERT_SQLITE = sqlite.insert(replay_cache).on_conflict_do_nothing()


async def remember(conn: AsyncConnection, key: str, expires_at: int) -> bool:
    """Record ``key`` until ``expires_at``; False if it is already recorded (a replay).

    Uses INSERT ... ON CONFLICT DO NOTHING so a replay does not abort the surrounding
    transaction.  An expired row left behind by a late purge still counts: callers reject
    stale inputs by their own timestamps long before the row could be purged.
    """
    stmt = _INSERT_PG if conn.dialect.name == "postgresql" else _INSERT_SQLITE
    result = await conn.execute(stmt, {"key": key, "expires_at": expires_at})
    return result.rowcount == 1


async def purge(conn: AsyncConnection, now: int) -> int:
    result = await conn.execute(delete(replay_cache).where(replay_cache.c.expires_at < now))
    return result.rowcount
