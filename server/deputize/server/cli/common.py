"""What every command shares: the config flag, the database for one command, refusals."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from deputize.server.settings import (
    Settings,
    load_settings,
)
from deputize.server.storage.database import Database

T = TypeVar("T")
DEFAULT_CONFIG = "deputize.yaml"


class CommandError(Exception):
    """A refusal to print for the user (exit status 1)."""


class UsageError(Exception):
    """A flag's value is wrong; the message starts with the flag as the user typed it
    (``--scope: ...``), never with the config key behind it (exit status 2, as argparse)."""


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


async def _with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.async_database_url, pool_size=1)
    try:
        await db.migrate()
        return await action(db)
    finally:
        await db.dispose()


def run(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    return asyncio.run(_with_db(settings, action))


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
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def config_arg(parser: argparse.ArgumentParser, *, default: str | None = DEFAULT_CONFIG) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=default,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )
