"""What every command shares: the config flag, the database for one command, refusals."""

from __future__ import annotations

import argparse
import asyncio
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


def when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )
