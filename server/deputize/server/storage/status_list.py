"""Storage for the token status list: reserving index blocks and reading revoked indexes."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import issued_tokens, status_list_allocator

_RESERVE = (
    update(status_list_allocator)
    .where(status_list_allocator.c.name == "tokens")
    .values(next_idx=status_list_allocator.c.next_idx + bindparam("count"))
    .returning(status_list_allocator.c.next_idx)
)
_HIGH_WATER = select(status_list_allocator.c.next_idx).where(
    status_list_allocator.c.name == "tokens"
)
_REVOKED = select(issued_tokens.c.status_idx).where(
    issued_tokens.c.revoked_at.is_not(None),
    issued_tokens.c.status_idx >= bindparam("low"),
    issued_tokens.c.status_idx < bindparam("high"),
)


async def reserve(conn: AsyncConnection, count: int) -> int:
    """Reserve ``count`` consecutive indexes; returns the first.  No two callers, in any
    process, ever get the same index (the row is updated atomically)."""
    end = (await conn.execute(_RESERVE, {"count": count})).scalar_one()
    return int(end) - count


async def high_water(conn: AsyncConnection) -> int:
    """One past the highest index ever reserved."""
    return int((await conn.execute(_HIGH_WATER)).scalar_one())


async def revoked(conn: AsyncConnection, low: int, high: int) -> list[int]:
    """Indexes in ``[low, high)`` whose tokens are revoked."""
    rows = await conn.execute(_REVOKED, {"low": low, "high": high})
    return [int(idx) for idx in rows.scalars()]
