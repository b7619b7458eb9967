"""Pushed authorization requests (RFC 9126): stored as the SHA-256 of their ``request_uri``.

RFC 9126 §2.2: the ``request_uri`` is a URN the AS makes up, with enough randomness that it
cannot be guessed, valid for ``expires_in`` seconds.  §4: it is bound to the client that pushed
it, and used once: :func:`take` deletes the row as it reads it, so two concurrent uses of one
``request_uri`` cannot both succeed (``DELETE ... RETURNING``: PostgreSQL, SQLite 3.35+).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Final

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import pushed_requests

#: RFC 9126 §2.2: "urn:ietf:params:oauth:request_uri:" followed by a reference.
URN_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"
_MAX_LENGTH: Final = 128


def new_request_uri() -> str:
    """256 random bits (RFC 9126 §7.1: unguessable, like an authorization code)."""
    return URN_PREFIX + secrets.token_urlsafe(32)


def _digest(request_uri: str) -> str:
    return hashlib.sha256(request_uri.encode("utf-8")).hexdigest()


async def store(
    conn: AsyncConnection,
    request_uri: str,
    *,
    client_id: str,
    params: Sequence[tuple[str, str]],
    expires_at: int,
) -> None:
    await conn.execute(
        insert(pushed_requests).values(
            request_hash=_digest(request_uri),
            client_id=client_id,
            params=json.dumps([list(pair) for pair in params]),
            expires_at=expires_at,
        )
    )


async def take(
    conn: AsyncConnection, request_uri: str, client_id: str, now: int
) -> list[tuple[str, str]] | None:
    """The pushed parameters, removed as they are read; None when the ``request_uri`` is
    unknown, already used, pushed by another client (left in place: presenting someone else's
    ``request_uri`` must not spend it) or expired (spent all the same)."""
    if not request_uri.startswith(URN_PREFIX) or len(request_uri) > _MAX_LENGTH:
        return None
    row = (
        await conn.execute(
            delete(pushed_requests)
            .where(
                pushed_requests.c.request_hash == _digest(request_uri),
                pushed_requests.c.client_id == client_id,
            )
            .returning(pushed_requests.c.params, pushed_requests.c.expires_at)
        )
    ).first()
    if row is None or row.expires_at <= now:
        return None
    return [(str(name), str(value)) for name, value in json.loads(row.params)]


async def purge(conn: AsyncConnection, before: int) -> None:
    await conn.execute(delete(pushed_requests).where(pushed_requests.c.expires_at < before))
