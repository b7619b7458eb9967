"""Shared fixtures: a real database (SQLite file or a fresh PostgreSQL database) and a live
Deputize server on a loopback port, spoken to over real HTTP.

PostgreSQL tests need ``DEPUTIZE_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1/test``).
Without it they are skipped locally; with ``CI`` set they fail instead, so CI cannot go green
without them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from deputize.server.settings import ENV_CLIENT_SECRET_PREFIX, ENV_DATABASE_URL, ENV_ISSUER

from support import POSTGRES_ENV, LiveServer, ServerFactory


@pytest.fixture
def no_deputize_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_settings`` reads the process environment: keep ``DEPUTIZE_*`` overrides out of
    tests of the command line (use with ``pytestmark = pytest.mark.usefixtures(...)``)."""
    for name in list(os.environ):
        if name in (ENV_ISSUER, ENV_DATABASE_URL) or name.startswith(ENV_CLIENT_SECRET_PREFIX):
            monkeypatch.delenv(name)


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"set {POSTGRES_ENV} to run PostgreSQL tests")
    return url


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database for each use: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'deputize.db'}"
        return
    admin = _postgres_admin_url()
    name = f"deputize_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"cannot reach PostgreSQL at {admin}: {exc}")
    base, _, _ = admin.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def server_factory(database_url: str) -> Iterator[ServerFactory]:
    """Start live servers on one fresh database; all are stopped at the end of the test."""
    factory = ServerFactory(database_url)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    """A live server with the standard test clients (see ``support.standard_clients``)."""
    return server_factory.start()


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Any]:
    """A scripted browser (``signin_support.Browser``) on the module's ``server`` fixture."""
    from signin_support import Browser

    b = Browser(server)
    yield b
    b.close()
