"""Telling a database outage from a bug: what a failure means, in a few words, logged sparingly.

When PostgreSQL refuses connections, stops answering (a network partition), runs out of
connections, or an SQLite file stays locked past its busy timeout, every request that needs
the database fails the same expected way.  Such a failure is not a bug: it earns the client a
503 ``temporarily_unavailable`` (``app.py``, ``endpoints/pages.py``) rather than a 500, and the
log one line per kind of failure per interval rather than a traceback per request.

:func:`unavailable_cause` is the one place that decides whether an exception means "the
database is unavailable", and names the cause; start-up and the command line can use it too.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg
import sqlalchemy.exc

logger = logging.getLogger("deputize.server")

#: How often each kind of failure may reach the log (seconds).
LOG_INTERVAL: Final = 10.0

#: Exception types that may carry an outage; the app sends each to its classifying handler.
#: (``TimeoutError`` and ``ConnectionError`` are ``OSError`` subclasses.)
DRIVER_ERRORS: Final[tuple[type[Exception], ...]] = (
    OSError,
    sqlalchemy.exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

_UNREACHABLE: Final = {
    errno.EHOSTUNREACH: "no route to the database host",
    errno.ENETUNREACH: "the database's network is unreachable",
    errno.ENETDOWN: "the network is down",
    errno.EHOSTDOWN: "the database host is down",
    errno.ETIMEDOUT: "connecting timed out",
}

#: PostgreSQL SQLSTATE codes and classes (Appendix A of its manual) that say the database,
#: not the request, is the problem.
_SQLSTATES: Final = {
    "57014": "a statement ran past database.statement_timeout",
    "57P01": "the database is shutting down",
    "57P02": "the database is shutting down",
    "57P03": "the database is starting up or shutting down",
    "3D000": "the database does not exist",
}
_SQLSTATE_CLASSES: Final = {
    "08": "the connection to the database failed",
    "28": "the database refused the credentials",
    "53": "the database is out of resources (too many connections, disk or memory)",
}

#: SQLite's messages (sqlite3.OperationalError carries no code before Python 3.11's
#: ``sqlite_errorname``, and aiosqlite may not pass it on), matched by their start.
_SQLITE: Final = {
    "database is locked": "the database file stayed locked past database.statement_timeout",
    "unable to open database file": "cannot open the database file",
    "disk i/o error": "disk I/O error on the database file",
    "attempt to write a readonly database": "the database file is read-only",
    "database or disk is full": "the disk holding the database is full",
    "file is not a database": "the file is not a database (not SQLite)",
}


def unavailable_cause(exc: BaseException, *, url: str | None = None) -> str | None:
    """A few words on why the database is unavailable, if ``exc`` says it is; else None.

    Follows the chain the drivers build (SQLAlchemy's ``orig``, then ``raise ... from``), so
    a wrapped driver error is recognised wherever it was raised.  ``url``, the database URL,
    lets SQLite's "unable to open database file" say why (a missing folder, a file where a
    folder should be, a folder that cannot be written), for the command line and start-up.
    """
    invalidated = False
    for one in _chain(exc):
        cause = _cause_of(one)
        if cause == _SQLITE["unable to open database file"] and url is not None:
            return _sqlite_open(cause, url)
        if cause is not None:
            return cause
        invalidated |= bool(getattr(one, "connection_invalidated", False))
    # SQLAlchemy found the connection dead although the error itself says nothing more.
    return "the connection to the database was lost" if invalidated else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def _cause_of(exc: BaseException) -> str | None:
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # QueuePool: no connection came free
        return "no database connection came free within database.pool_timeout"
    if isinstance(exc, TimeoutError):  # asyncpg's connect and command timeouts, our own
        return "the database did not answer in time"
    if isinstance(exc, ConnectionRefusedError) or (
        # asyncpg, for a host with several addresses: "Multiple exceptions: ... Connect call
        # failed (...)", an OSError with no errno of its own.
        isinstance(exc, OSError) and "Connect call failed" in str(exc)
    ):
        return "connection refused"
    if isinstance(exc, ConnectionError):
        return "the connection to the database was lost"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the database host name"
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return _UNREACHABLE[exc.errno]
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        cause = _SQLSTATES.get(state) or _SQLSTATE_CLASSES.get(state[:2])
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if said and (state == "3D000" or state[:2] == "28"):
            # The server's own words name what is missing (the database, the role).
            return f"{cause} ({said})"
        return cause
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return "the connection to the database was lost"
    if isinstance(exc, sqlite3.DatabaseError):  # OperationalError, and "not a database"
        message = str(exc).lower()
        return next((cause for text, cause in _SQLITE.items() if message.startswith(text)), None)
    return None


def _sqlite_open(cause: str, url: str) -> str:
    """Why SQLite could not open its file, when the path says."""
    if "sqlite" not in url.partition("://")[0]:
        return cause
    folder = Path(url.partition(":///")[2]).parent
    if not folder.exists():
        ancestor = next((p for p in folder.parents if p.exists()), None)
        if ancestor is not None and not ancestor.is_dir():
            return f"{cause}: {ancestor} is not a folder"
        return f"{cause}: folder {folder} does not exist"
    if not folder.is_dir():
        return f"{cause}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{cause}: folder {folder} is not writable"
    return cause


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on every wait for the database, in seconds (``database.*_timeout``).

    Without them a request waits as long as the database does: for ever in a network
    partition, since nothing answers and nothing fails.  With them it fails with an error
    :func:`~deputize.server.storage.outage.unavailable_cause` recognises, and gets a 503.
    """

    #: Opening a connection: TCP, TLS and authentication (asyncpg's ``timeout``).
    connect: float
    #: One statement, client side (asyncpg's ``command_timeout``, which also covers a partition,
    #: where a server-side ``statement_timeout`` never fires), or on SQLite, the busy timeout:
    #: how long a writer waits for another's lock.
    statement: float
    #: Waiting for a pooled connection when all are busy.
    pool: float


@dataclass(slots=True)
class _Kind:
    logged_at: float
    suppressed: int = 0


class OutageLog:
    """Logs each kind of database failure at most once per ``interval``, no traceback.

    An outage of a few seconds under load fails thousands of requests the same way; one line
    says it, and the next line (once the interval has passed) says how many were left out.
    """

    def __init__(
        self, *, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def report(self, cause: str) -> None:
        now = self._clock()
        kind = self._kinds.get(cause)
        if kind is not None and now - kind.logged_at < self._interval:
            kind.suppressed += 1
            return
        more = ""
        if kind is not None and kind.suppressed:
            more = f" ({kind.suppressed} more since the last report)"
        self._kinds[cause] = _Kind(now)
        logger.error("database unavailable: %s%s", cause, more)
