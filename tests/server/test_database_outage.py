"""When the database is unavailable: a quick 503 ``temporarily_unavailable``, never a hang, a
500 or a traceback; discovery and JWKS keep answering; service resumes without a restart.

PostgreSQL is reached through a TCP proxy (``tcp_proxy.py``) the tests stop (refused
connections, as when PostgreSQL is down) and freeze (a partition: nothing answers, nothing
fails); the shared PostgreSQL itself is never touched.  On SQLite the fault is a writer that
holds the database's lock past the busy timeout.  Timeouts are short here (half a second) so
each test takes seconds; the bounds asserted are a few times the configured ones.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import asyncpg
import httpx
import pytest
import sqlalchemy.exc
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from deputize.server.settings import ConfigError, parse_settings
from deputize.server.storage.group_commit import GroupCommit, HotPathStats
from deputize.server.storage.outage import OutageLog, unavailable_cause

from support import SECRETS, LiveServer, LogWatch, ServerFactory

#: The timeouts the live tests run with (seconds), and the longest a 503 may take with them:
#: the statement timeout, asyncpg's cancel request (bounded by the same timeout) and a
#: connection attempt, with room for a loaded machine.
TIMEOUT = 0.5
BOUND = 6 * TIMEOUT
FAST_TIMEOUTS = {"connect_timeout": TIMEOUT, "statement_timeout": TIMEOUT, "pool_timeout": TIMEOUT}


# --- which failures are outages --------------------------------------------------------------


def _wrapped(orig: BaseException) -> sqlalchemy.exc.DBAPIError:
    """A driver error as SQLAlchemy raises it (``orig``, and the driver's own as the cause)."""
    outer = sqlalchemy.exc.OperationalError("SELECT 1", None, orig)
    outer.__cause__ = orig
    return outer


def _adapted(error: BaseException) -> BaseException:
    """asyncpg's error as SQLAlchemy's adapter re-raises it (``raise ... from error``)."""
    adapter = RuntimeError(str(error))
    adapter.__cause__ = error
    return _wrapped(adapter)


CAUSES: list[tuple[BaseException, str | None]] = [
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused"),
    (TimeoutError(), "the database did not answer in time"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "the connection to the database was lost"),
    (OSError(errno.EHOSTUNREACH, "no route"), "no route to the database host"),
    (socket.gaierror(socket.EAI_NONAME, "unknown"), "cannot resolve the database host name"),
    (
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        "no database connection came free within database.pool_timeout",
    ),
    (
        _adapted(asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation")),
        "the connection to the database failed",
    ),
    (
        _adapted(asyncpg.exceptions.QueryCanceledError("canceling statement")),
        "a statement ran past database.statement_timeout",
    ),
    (
        _adapted(asyncpg.exceptions.CannotConnectNowError("starting up")),
        "the database is starting up or shutting down",
    ),
    (
        _adapted(asyncpg.exceptions.TooManyConnectionsError("too many clients")),
        "the database is out of resources (too many connections, disk or memory)",
    ),
    (
        _adapted(asyncpg.exceptions.InvalidCatalogNameError("no such database")),
        "the database does not exist (no such database)",  # with the server's own words
    ),
    (
        asyncpg.exceptions.InterfaceError("connection is closed"),
        "the connection to the database was lost",
    ),
    (
        _wrapped(sqlite3.OperationalError("database is locked")),
        "the database file stayed locked past database.statement_timeout",
    ),
    (
        _wrapped(sqlite3.OperationalError("unable to open database file")),
        "cannot open the database file",
    ),
    # Not outages: bugs and refusals, which stay 500s with their traceback (or their own answer).
    (_adapted(asyncpg.exceptions.UniqueViolationError("duplicate key")), None),
    (_adapted(asyncpg.exceptions.UndefinedTableError("no such table")), None),
    (_wrapped(sqlite3.OperationalError("no such table: clients")), None),
    (asyncpg.exceptions.InterfaceError("another operation is in progress"), None),
    (OSError(errno.ENOENT, "no such file"), None),
    (ValueError("bad value"), None),
]


@pytest.mark.parametrize(
    ("exc", "cause"),
    CAUSES,
    ids=[
        "a refused connection is an outage",
        "a timeout is an outage",
        "a reset connection is an outage",
        "an unreachable host is an outage",
        "an unresolvable host name is an outage",
        "an exhausted pool is an outage",
        "a connection closed mid-statement is an outage",
        "a statement cancelled by its timeout is an outage",
        "a database starting up is an outage",
        "too many connections is an outage",
        "a database that does not exist is an outage",
        "asyncpg's closed connection is an outage",
        "a SQLite file locked past the busy timeout is an outage",
        "a SQLite file that cannot be opened is an outage",
        "a unique violation is not an outage",
        "a missing table is a bug, not an outage",
        "a SQLite missing table is a bug, not an outage",
        "an asyncpg misuse is a bug, not an outage",
        "a missing file is not an outage",
        "a ValueError is not an outage",
    ],
)
def test_unavailable_cause_tells_outages_from_bugs(exc: BaseException, cause: str | None) -> None:
    assert unavailable_cause(exc) == cause


def test_outage_log_writes_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = OutageLog(interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="deputize.server"):
        for _ in range(1000):
            log.report("connection refused")
            log.report("the database did not answer in time")
        now[0] += 10.0
        log.report("connection refused")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "database unavailable: connection refused",
        "database unavailable: the database did not answer in time",
        "database unavailable: connection refused (999 more since the last report)",
    ]
    assert all(record.exc_info is None for record in caplog.records)


# --- settings --------------------------------------------------------------------------------


def _database(**keys: Any) -> dict[str, Any]:
    return {"issuer": "https://auth.example.com", "database": {"url": "sqlite:///x.db", **keys}}


def test_timeouts_have_defaults_of_a_few_seconds() -> None:
    settings = parse_settings(_database(), env={})
    assert settings.database_connect_timeout == 3.0
    assert settings.database_statement_timeout == 5.0
    assert settings.database_pool_timeout == 2.0
    fractional = parse_settings(_database(connect_timeout=0.5, statement_timeout=2), env={})
    assert fractional.database_connect_timeout == 0.5
    assert fractional.database_statement_timeout == 2.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("connect_timeout", 0),
        ("statement_timeout", -1),
        ("pool_timeout", 61),
        ("connect_timeout", True),
        ("statement_timeout", "5s"),
    ],
    ids=[
        "refuses a zero connect timeout (it would never connect)",
        "refuses a negative statement timeout",
        "refuses a pool timeout over a minute",
        "refuses a boolean",
        "refuses a string with a unit",
    ],
)
def test_timeouts_out_of_range_are_refused_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^database\.{key}: expected a number of seconds"):
        parse_settings(_database(**{key: value}), env={})


# --- live servers ----------------------------------------------------------------------------


@contextmanager
def watch_logs() -> Iterator[LogWatch]:
    """Every warning or error the server, uvicorn (where tracebacks of exceptions that escape the
    application go) and the database drivers log."""
    watch = LogWatch(logging.WARNING)
    names = ("deputize.server", "uvicorn.error", "asyncpg", "sqlalchemy")
    loggers = [logging.getLogger(name) for name in names]
    levels = [one.level for one in loggers]
    for one in loggers:
        one.addHandler(watch)
        if one.getEffectiveLevel() > logging.WARNING:
            one.setLevel(logging.WARNING)
    try:
        yield watch
    finally:
        for one, level in zip(loggers, levels, strict=True):
            one.removeHandler(watch)
            one.setLevel(level)


def assert_quietly_logged(watch: LogWatch, *, most: int) -> None:
    assert all(record.exc_info is None for record in watch.records), "a traceback was logged"
    lines = [record.getMessage() for record in watch.records]
    assert 1 <= len(lines) <= most, lines
    assert all(line.startswith("database unavailable: ") for line in lines), lines


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert set(body) == {"error", "error_description"}


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def local_port(response: httpx.Response) -> int:
    """The client side's port of the connection the response came on."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


def until_served(call: Callable[[], httpx.Response], *, deadline: float = 15.0) -> httpx.Response:
    """Poll ``call`` until it is answered other than 503 (each try is itself bounded)."""
    end = time.monotonic() + deadline
    while True:
        response = call()
        if response.status_code != 503 or time.monotonic() > end:
            return response


@pytest.fixture
def proxied(database_url: str) -> Iterator[tuple[ServerFactory, TcpProxy]]:
    """A server factory whose database (a fresh PostgreSQL one) is reached through a proxy."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    factory = ServerFactory(url.set(port=proxy.port).render_as_string(False))
    try:
        yield factory, proxy
    finally:
        factory.stop_all()
        proxy.close()


def start(factory: ServerFactory) -> LiveServer:
    return factory.start({"database": FAST_TIMEOUTS})


class Calls:
    """The requests the tests make, each needing the database in its own way."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.token = server.token(client_id="svc-bearer").json()["access_token"]

    def token_request(self) -> httpx.Response:  # PostgreSQL: the hot path and group commit
        return self.server.token(client_id="svc-bearer")

    def introspect(self) -> httpx.Response:  # SQLAlchemy's pool
        return self.server.client.post(
            "/introspect",
            data={"token": self.token},
            headers=self.server.basic("resource-server", SECRETS["resource-server"]),
        )

    def revoke(self) -> httpx.Response:
        return self.server.client.post(
            "/revoke", data={"token": "not-a-token"}, headers=self.server.basic("svc-bearer")
        )

    def account_page(self) -> httpx.Response:
        return self.server.client.get("/account")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_refused_connections_get_a_quick_503_and_service_resumes(
    proxied: tuple[ServerFactory, TcpProxy],
) -> None:
    factory, proxy = proxied
    server = start(factory)
    calls = Calls(server)
    assert calls.introspect().json()["active"] is True
    with watch_logs() as watch:
        proxy.stop()
        for call in (calls.token_request, calls.introspect, calls.revoke):
            for _ in range(10):
                response, took = timed(call)
                assert_unavailable(response)
                assert took < BOUND
        page, took = timed(calls.account_page)
        assert page.status_code == 503 and took < BOUND
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "5"
        assert "Temporarily unavailable" in page.text and "Traceback" not in page.text
        # What lives in memory keeps answering.
        assert server.client.get("/.well-known/oauth-authorization-server").status_code == 200
        assert server.client.get("/jwks").status_code == 200
        # The 503 is an ordinary response: the next request goes on the same connection.
        first = calls.introspect()
        second = server.client.get("/jwks")
        assert_unavailable(first)
        assert local_port(first) == local_port(second)
        # 31 failures, one line per kind (the first use of a dead pooled connection and the
        # refused reconnections are two kinds).
        assert_quietly_logged(watch, most=3)
    proxy.resume()
    for call in (calls.token_request, calls.introspect):
        assert until_served(call).status_code == 200
    assert until_served(calls.account_page).status_code == 302  # to sign in: served


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_partition_gets_a_503_within_the_timeouts_not_a_hang(
    proxied: tuple[ServerFactory, TcpProxy],
) -> None:
    factory, proxy = proxied
    # A pool timeout shorter than the others, so that requests beyond the pool's 20
    # connections give up waiting for one while those 20 wait on the database.
    server = factory.start({"database": {**FAST_TIMEOUTS, "pool_timeout": 0.1}})
    calls = Calls(server)
    with watch_logs() as watch:
        proxy.freeze()
        for call in (calls.token_request, calls.introspect):
            response, took = timed(call)
            assert_unavailable(response)
            assert took < BOUND, f"{took:.2f} s"
        # Many at once, more than the pools hold (20 and 10): each waits at most its bounds.
        started = time.monotonic()
        statuses = asyncio.run(_concurrently(server, 60))
        assert statuses == [503] * 60
        assert time.monotonic() - started < 2 * BOUND
        assert server.client.get("/.well-known/openid-configuration").status_code == 200
        assert server.client.get("/jwks").status_code == 200
        assert_quietly_logged(watch, most=4)
        logged = {record.getMessage() for record in watch.records}
        assert "database unavailable: the database did not answer in time" in logged
        assert (
            "database unavailable: no database connection came free within database.pool_timeout"
            in logged
        )
    proxy.resume()
    assert until_served(calls.token_request).status_code == 200
    assert until_served(calls.introspect).json()["active"] is True


async def _concurrently(server: LiveServer, count: int) -> list[int]:
    """``count`` token and introspection requests at once, on as many connections."""
    basic = server.basic("resource-server", SECRETS["resource-server"])
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:

        async def one(i: int) -> int:
            if i % 2:
                response = await client.post(
                    "/token",
                    data={"grant_type": "client_credentials"},
                    headers=server.basic("svc-bearer"),
                )
            else:
                response = await client.post("/introspect", data={"token": "x"}, headers=basic)
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_file_locked_past_the_busy_timeout_gets_a_503(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory)
    calls = Calls(server)
    path = make_url(server.settings.async_database_url).database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with watch_logs() as watch:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock, and keeps it
            response, took = timed(calls.token_request)
            assert_unavailable(response)
            assert TIMEOUT <= took < BOUND
            assert server.client.get("/jwks").status_code == 200
            assert_quietly_logged(watch, most=1)
            holder.execute("ROLLBACK")
        assert calls.token_request().status_code == 200
    finally:
        holder.close()


class _WatchedPool:
    """The pool as the group commit uses it, saying when a batch has taken a connection."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.acquired = asyncio.Event()

    async def acquire(self) -> asyncpg.pool.PoolConnectionProxy:
        conn = await self._pool.acquire()
        self.acquired.set()
        return conn

    async def release(self, conn: asyncpg.pool.PoolConnectionProxy) -> None:
        await self._pool.release(conn)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_group_commit_fails_the_queue_with_its_batch_in_a_partition(
    proxied: tuple[ServerFactory, TcpProxy],
) -> None:
    """Requests queued behind a batch that timed out fail with it, not a timeout later each."""
    factory, proxy = proxied
    start(factory)  # creates the schema and deputize_apply_batch
    dsn = factory.database_url

    async def run() -> tuple[list[BaseException | None], list[float]]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, command_timeout=TIMEOUT)
        watched = _WatchedPool(pool)
        commit = GroupCommit(
            cast(asyncpg.Pool, watched), HotPathStats(), in_flight=1, pool_timeout=TIMEOUT
        )
        finished: list[float] = []

        async def apply() -> None:
            try:
                await commit.apply([[], [], None, [], None, None, [], []])  # writes nothing
            finally:
                finished.append(time.monotonic())

        try:
            proxy.freeze()
            first = asyncio.create_task(apply())
            await watched.acquired.wait()  # the first request's batch is on its way, alone
            behind = [asyncio.create_task(apply()) for _ in range(3)]
            outcomes = await asyncio.gather(first, *behind, return_exceptions=True)
            return [o if isinstance(o, BaseException) else None for o in outcomes], finished
        finally:
            proxy.resume()
            await pool.close()

    outcomes, finished = asyncio.run(run())
    assert [unavailable_cause(o) for o in outcomes if o is not None] == [
        "the database did not answer in time"
    ] * 4
    assert max(finished) - min(finished) < TIMEOUT / 2  # together, not one timeout after another
