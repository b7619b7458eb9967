"""Signing key rows.  The lifecycle rules that move keys between states live in ``keyring.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import signing_keys

NEXT, ACTIVE, RETIRED = "next", "active", "retired"


@dataclass(frozen=True, slots=True)
class KeyRow:
    kid: str
    alg: str
    state: str
    private_pem: str
    created_at: int
    activated_at: int | None
    retired_at: int | None
    publish_until: int | None


async def load(conn: AsyncConnection) -> list[KeyRow]:
    rows = await conn.execute(select(signing_keys).order_by(signing_keys.c.created_at))
    return [KeyRow(**row._mapping) for row in rows]


async def add(conn: AsyncConnection, key: KeyRow) -> None:
    await conn.execute(insert(signing_keys).values(**asdict(key)))


async def set_state(
    conn: AsyncConnection,
    kid: str,
    state: str,
    *,
    activated_at: int | None = None,
    retired_at: int | None = None,
    publish_until: int | None = None,
) -> None:
    values: dict[str, object] = {"state": state}
    if activated_at is not None:
        values["activated_at"] = activated_at
    if retired_at is not None:
        values["retired_at"] = retired_at
        values["publish_until"] = publish_until
    await conn.execute(update(signing_keys).where(signing_keys.c.kid == kid).values(**values))


async def remove(conn: AsyncConnection, kid: str) -> None:
    await conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid))
