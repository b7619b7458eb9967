"""Telling "the database cannot be reached or opened" apart from a bug, in a few words.

The drivers report an unreachable database in many shapes: ``ConnectionRefusedError`` raised
straight from asyncpg's connect, a PostgreSQL error with an SQLSTATE of class 08 or 28 or
``3D000`` wrapped in SQLAlchemy's ``DBAPIError``, ``sqlite3.OperationalError`` wrapped in
SQLAlchemy's ``OperationalError``.  :func:`describe_unavailable` looks through the wrapping and
returns a short cause a person can act on, or ``None`` for anything else (which stays a bug,
with its traceback).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

#: PostgreSQL SQLSTATEs (Appendix A of its manual) that mean "this database cannot serve you".
_SQLSTATE_CLASSES = ("08", "28")  # connection exception; invalid authorization specification
_SQLSTATES = {
    "3D000",  # invalid_catalog_name: the database does not exist
    "53300",  # too_many_connections
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: starting up or shutting down
}


def describe_unavailable(exc: BaseException, *, url: str | None = None) -> str | None:
    """A short cause when ``exc`` (or what it wraps) says the database is unavailable.

    ``url`` (the async URL the engine was made with) lets an SQLite "unable to open database
    file" say why: a missing folder, a path under a file, a folder that cannot be written.
    """
    for error in _chain(exc):
        cause = _describe_one(error, url)
        if cause is not None:
            return cause
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: SQLAlchemy's ``orig``, then causes and contexts."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(found) < 16:
        error = pending.pop(0)
        if error is None or any(error is f for f in found):
            continue
        found.append(error)
        orig = getattr(error, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None]
        pending += [error.__cause__, error.__context__]
    return found


def _describe_one(error: BaseException, url: str | None) -> str | None:
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate in _SQLSTATES or sqlstate[:2] in _SQLSTATE_CLASSES):
        return _first_line(error)
    if isinstance(error, TimeoutError):
        return "no answer in time (timed out)"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    if isinstance(error, ConnectionRefusedError) or (
        isinstance(error, OSError) and "Connect call failed" in str(error)
    ):
        return "connection refused (is the database server running, on that host and port?)"
    if isinstance(error, OSError) and error.errno in (
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ECONNRESET,
    ):
        return error.strerror or str(error)
    if type(error).__module__ == "sqlite3":
        message = _first_line(error)
        if message == "unable to open database file":
            return _sqlite_open(message, url)
        if message in ("attempt to write a readonly database", "database is locked") or (
            message == "file is not a database"
        ):
            return message
    return None


def _sqlite_open(message: str, url: str | None) -> str:
    """Why SQLite could not open its file, when the path says."""
    if url is None or "sqlite" not in url.partition("://")[0]:
        return message
    folder = Path(url.partition(":///")[2]).parent
    if not folder.exists():
        ancestor = next((p for p in folder.parents if p.exists()), None)
        if ancestor is not None and not ancestor.is_dir():
            return f"{message}: {ancestor} is a file, not a folder"
        return f"{message}: folder {folder} does not exist"
    if not folder.is_dir():
        return f"{message}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{message}: folder {folder} is not writable"
    return message


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
