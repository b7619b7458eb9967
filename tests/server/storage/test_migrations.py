"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from deputize.server.settings import async_database_url
from deputize.server.storage.database import Database
from deputize.server.storage.tables import metadata


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def _migrate_and_compare(url: str) -> list[Any]:
    db = Database(async_database_url(url))
    try:
        await db.migrate()
        await db.migrate()  # idempotent: a second start changes nothing
        async with db.begin() as conn:
            return await conn.run_sync(_diff)
    finally:
        await db.dispose()


def test_migrations_match_the_declared_tables(database_url: str) -> None:
    assert asyncio.run(_migrate_and_compare(database_url)) == []
