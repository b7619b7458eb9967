"""What every command shares: the config flag, the database for one command, refusals."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from deputize.server.http import dates
from deputize.server.settings import (
    ENV_DATABASE_URL,
    Settings,
    load_settings,
)
from deputize.server.storage.database import Database
from deputize.server.storage.outage import unavailable_cause

T = TypeVar("T")
DEFAULT_CONFIG = "deputize.yaml"


class CommandError(Exception):
    """A refusal to print for the user (exit status 1)."""


class UsageError(Exception):
    """A flag's value is wrong; the message starts with the flag as the user typed it
    (``--scope: ...``), never with the config key behind it (exit status 2, as argparse)."""


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened: one line naming ``database.url`` (redacted)
    and the cause, exit status 1; never a driver's traceback."""


async def _with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.async_database_url, pool_size=1)
    try:
        # PostgreSQL that does not answer (a partition, a firewall dropping packets) would
        # otherwise hold the command for a minute: database.connect_timeout bounds it.
        async with asyncio.timeout(settings.database_connect_timeout):
            async with db.engine.connect():  # the pool keeps it for what follows
                pass
        await db.migrate()
        return await action(db)
    finally:
        await db.dispose()


def run(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    try:
        _open_sqlite_file(settings.async_database_url)
        return asyncio.run(_with_db(settings, action))
    except Exception as exc:
        unavailable(settings, exc)
        raise


def _open_sqlite_file(url: str) -> None:
    """Open (or create) an SQLite file once, synchronously, before the event loop: when a file
    cannot be opened, aiosqlite leaves its worker thread to report that into the closed loop,
    and a traceback follows our one line."""
    scheme, _, path = url.partition(":///")
    if scheme.startswith("sqlite"):
        sqlite3.connect(path).close()


def unavailable(settings: Settings, exc: BaseException) -> None:
    """Raise :class:`DatabaseUnavailable` if ``exc`` says the database is out of reach."""
    cause = unavailable_cause(exc, url=settings.async_database_url)
    if cause is not None:
        key = ENV_DATABASE_URL if os.environ.get(ENV_DATABASE_URL) else "database.url"
        raise DatabaseUnavailable(f"{key} ({redact(settings.database_url)}): {cause}") from None


def redact(url: str) -> str:
    """``url`` without its password, fit to print (check-config, database errors)."""
    # asyncpg also takes the password as a query parameter (?password=...).
    url = re.sub(r"([?&](?:ssl)?password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
    return url


def when(ts: int) -> str:
    """A time as every page and command shows it, to the second (``http/dates.py``)."""
    return dates.when(ts, seconds=True)


def config_arg(parser: argparse.ArgumentParser, *, default: str | None = DEFAULT_CONFIG) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=default,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )
