"""Browser sessions: the cookie carries 256 random bits, the table their SHA-256 only, so a
leaked database does not let anyone sign in as the users in it."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import browser_sessions, users


@dataclass(frozen=True, slots=True)
class Session:
    sub: str
    auth_time: int
    expires_at: int
    id_hash: str


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


async def create(conn: AsyncConnection, sub: str, now: int, lifetime: int) -> str:
    """A new session (always a new identifier: no fixation); returns the cookie value."""
    value = secrets.token_urlsafe(32)
    await conn.execute(
        insert(browser_sessions).values(
            id_hash=digest(value), sub=sub, auth_time=now, expires_at=now + lifetime
        )
    )
    return value


async def find(conn: AsyncConnection, value: str, now: int) -> Session | None:
    """The live session for a cookie value, if its user is still enabled."""
    if not value or len(value) > 128:
        return None
    row = (
        await conn.execute(
            select(browser_sessions)
            .join(users, users.c.sub == browser_sessions.c.sub)
            .where(
                browser_sessions.c.id_hash == digest(value),
                browser_sessions.c.expires_at > now,
                users.c.disabled_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return Session(
        sub=row.sub, auth_time=row.auth_time, expires_at=row.expires_at, id_hash=row.id_hash
    )


async def end(conn: AsyncConnection, id_hash: str) -> None:
    await conn.execute(delete(browser_sessions).where(browser_sessions.c.id_hash == id_hash))


async def end_all(conn: AsyncConnection, sub: str) -> int:
    result = await conn.execute(delete(browser_sessions).where(browser_sessions.c.sub == sub))
    return result.rowcount


async def purge(conn: AsyncConnection, now: int) -> None:
    await conn.execute(delete(browser_sessions).where(browser_sessions.c.expires_at <= now))
