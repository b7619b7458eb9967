"""Server-wide random secrets, created once and shared by every instance through the database."""

from __future__ import annotations

import secrets as _random

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import server_secrets


async def get_or_create(conn: AsyncConnection, name: str, now: int) -> str:
    """The secret called ``name``; the first instance to ask creates it (race-safe)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(
        insert(server_secrets)
        .values(name=name, value=_random.token_urlsafe(32), created_at=now)
        .on_conflict_do_nothing()
    )
    value: str = (
        await conn.execute(select(server_secrets.c.value).where(server_secrets.c.name == name))
    ).scalar_one()
    return value
