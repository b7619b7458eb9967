"""The database handle: an async SQLAlchemy engine, migrations, and one transaction per request.

SQLite (aiosqlite) is the embedded default and PostgreSQL (asyncpg) the shared one; the same
statements run on both.  Driver calls never block the event loop.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from deputize.server.storage.batched import HotPath
from deputize.server.storage.outage import OutageLog, Timeouts

_LOCK_ID = zlib.crc32(b"deputize-startup")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.dialect = url.split("+", 1)[0].split(":", 1)[0]
        self.timeouts = timeouts
        #: One log line per kind of failure per interval, shared by everything using this handle.
        self.outages = OutageLog()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            # busy timeout: writers queue for the lock instead of failing at once.
            kwargs["connect_args"] = {"timeout": timeouts.statement if timeouts else 30}
        else:
            # No pool_pre_ping: it costs a round trip per transaction (about 0.65 ms of client
            # CPU here, half of a one-insert transaction).  Connections are recycled instead, and
            # one that died anyway is invalidated by its first error.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
            if timeouts is not None:
                kwargs["connect_args"] = {
                    "timeout": timeouts.connect,
                    "command_timeout": timeouts.statement,
                }
        if timeouts is not None:
            kwargs["pool_timeout"] = timeouts.pool
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # Start-up work (migrations, first keys) may wait on another instance's advisory lock
        # and run long statements: it gets connections of its own, without a statement timeout.
        self._startup_engine = self.engine
        if self.dialect == "postgresql" and timeouts is not None:
            self._startup_engine = create_async_engine(
                url, poolclass=NullPool, connect_args={"timeout": timeouts.connect}
            )
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._pool_size = pool_size
        #: PostgreSQL's batched path for the token endpoint, once :meth:`open_hot_path` ran.
        self.hot_path: HotPath | None = None

    async def open_hot_path(self) -> None:
        """Open the driver-level pool the token endpoint's hot path uses (PostgreSQL only;
        call after :meth:`migrate`, which creates the function that path relies on)."""
        if self.dialect == "postgresql" and self.hot_path is None:
            hot_path = HotPath(self.url, size=self._pool_size, timeouts=self.timeouts)
            await hot_path.open()
            self.hot_path = hot_path

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block exits normally, rolled back on an exception."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[AsyncConnection]:
        """Serialise migrations and key creation when several instances start together."""
        async with self._startup_engine.connect() as conn:
            if self.dialect == "postgresql":
                await conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_ID})")
                await conn.commit()
            try:
                yield conn
            finally:
                if self.dialect == "postgresql":
                    await conn.rollback()
                    await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_ID})")
                    await conn.commit()

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.startup_lock() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()

    async def dispose(self) -> None:
        if self.hot_path is not None:
            await self.hot_path.close()
            self.hot_path = None
        await self.engine.dispose()
        if self._startup_engine is not self.engine:
            await self._startup_engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("deputize.server") / "migrations")
    )
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL lets readers run beside the writer; BEGIN IMMEDIATE takes the write lock up front so
    two request transactions never deadlock upgrading a read lock."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
