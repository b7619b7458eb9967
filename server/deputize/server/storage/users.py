"""Users and the sign-in throttle.  Passwords are argon2id hashes (``accounts/passwords.py``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import sign_in_throttle, users


@dataclass(frozen=True, slots=True)
class User:
    sub: str
    password_hash: str
    name: str | None
    email: str | None
    created_at: int
    password_changed_at: int
    disabled_at: int | None
    roles: tuple[str, ...] = ()
    """The delegation policy's roles (docs/policy.md)."""

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def _user(row: Any) -> User:
    values = dict(row._mapping)
    values["roles"] = tuple((values.get("roles") or "").split())
    return User(**values)


async def get(conn: AsyncConnection, sub: str) -> User | None:
    if "\x00" in sub:  # PostgreSQL refuses NUL in text; no user name holds one
        return None
    row = (await conn.execute(select(users).where(users.c.sub == sub))).first()
    return None if row is None else _user(row)


async def list_all(conn: AsyncConnection) -> list[User]:
    rows = await conn.execute(select(users).order_by(users.c.sub))
    return [_user(row) for row in rows]


async def add(conn: AsyncConnection, user: User) -> bool:
    """Insert ``user``; False if the name is taken (also when two adds race)."""
    stmt = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    result = await conn.execute(
        stmt(users)
        .values(
            sub=user.sub,
            password_hash=user.password_hash,
            name=user.name,
            email=user.email,
            created_at=user.created_at,
            password_changed_at=user.password_changed_at,
            disabled_at=user.disabled_at,
            roles=" ".join(user.roles) or None,
        )
        .on_conflict_do_nothing()
    )
    return result.rowcount == 1


async def set_password(conn: AsyncConnection, sub: str, password_hash: str, now: int) -> bool:
    result = await conn.execute(
        update(users)
        .where(users.c.sub == sub)
        .values(password_hash=password_hash, password_changed_at=now)
    )
    return result.rowcount == 1


async def set_roles(conn: AsyncConnection, sub: str, roles: tuple[str, ...]) -> bool:
    result = await conn.execute(
        update(users).where(users.c.sub == sub).values(roles=" ".join(roles) or None)
    )
    return result.rowcount == 1


async def set_disabled(conn: AsyncConnection, sub: str, disabled_at: int | None) -> bool:
    result = await conn.execute(
        update(users).where(users.c.sub == sub).values(disabled_at=disabled_at)
    )
    return result.rowcount == 1


# --- throttle ----------------------------------------------------------------------------------


def throttle_key(username: str) -> str:
    """Keyed by what was typed (case-folded), known user or not: lockout reveals nothing."""
    return hashlib.sha256(username.casefold().encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Attempt:
    allowed: bool
    locked_until: int | None = None


async def reserve_attempt(
    conn: AsyncConnection, key: str, now: int, *, max_failures: int, lockout: int
) -> Attempt:
    """Count an attempt *before* the password is checked, so parallel guesses each use one up.

    The count resets once ``lockout`` seconds have passed since the first failure of a window
    (or since a lock ended).  :func:`clear` forgets it after a success.
    """
    stmt = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(
        stmt(sign_in_throttle)
        .values(key=key, failures=0, window_start=now, locked_until=None)
        .on_conflict_do_nothing()
    )
    row = (
        await conn.execute(
            select(sign_in_throttle).where(sign_in_throttle.c.key == key).with_for_update()
        )
    ).one()
    if row.locked_until is not None and row.locked_until > now:
        return Attempt(allowed=False, locked_until=row.locked_until)
    failures, window_start = row.failures, row.window_start
    if row.locked_until is not None or now - window_start >= lockout:
        failures, window_start = 0, now  # a lock ended, or the window passed: start afresh
    failures += 1
    locked_until = now + lockout if failures > max_failures else None
    await conn.execute(
        update(sign_in_throttle)
        .where(sign_in_throttle.c.key == key)
        .values(failures=failures, window_start=window_start, locked_until=locked_until)
    )
    return Attempt(allowed=locked_until is None, locked_until=locked_until)


async def lock_if_exhausted(
    conn: AsyncConnection, key: str, now: int, *, max_failures: int, lockout: int
) -> int | None:
    """After a failure: lock the name once ``max_failures`` attempts have failed."""
    result = await conn.execute(
        update(sign_in_throttle)
        .where(
            sign_in_throttle.c.key == key,
            sign_in_throttle.c.failures >= max_failures,
            sign_in_throttle.c.locked_until.is_(None),
        )
        .values(locked_until=now + lockout)
    )
    return now + lockout if result.rowcount == 1 else None


async def clear(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(sign_in_throttle).where(sign_in_throttle.c.key == key))


async def purge_throttle(conn: AsyncConnection, before: int) -> None:
    await conn.execute(
        delete(sign_in_throttle).where(
            sign_in_throttle.c.window_start < before,
            sign_in_throttle.c.locked_until.is_(None) | (sign_in_throttle.c.locked_until < before),
        )
    )
