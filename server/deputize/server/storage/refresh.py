"""Refresh tokens: stored as SHA-256, rotated on every use, revoked a whole family at a time.

A family is every refresh token rotated from one authorization code.  Its ``grant_jti`` names
the ledger row that each access token of the family hangs under (``parent_jti``), so revoking
that row revokes every access token the family produced and everything delegated from them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.codes import dump_details, load_details
from deputize.server.storage.tables import refresh_tokens

#: A recognisable prefix, so a leaked refresh token is easy to find with secret scanners.
PREFIX = "dzr_"


@dataclass(frozen=True, slots=True)
class RefreshToken:
    family: str
    grant_jti: str
    client_id: str
    sub: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    jkt: str | None
    auth_time: int
    consent_id: str
    issued_at: int
    expires_at: int
    family_expires_at: int
    rotated_at: int | None = None
    revoked_at: int | None = None
    authorization_details: list[dict[str, Any]] | None = None
    """RFC 9396: the sign-in's, kept whole; a refresh request may narrow its access token's."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue(conn: AsyncConnection, data: RefreshToken) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    values = {
        "token_hash": digest(token),
        **{k: getattr(data, k) for k in RefreshToken.__dataclass_fields__},
    }
    values["scopes"] = " ".join(data.scopes)
    values["resources"] = json.dumps(list(data.resources))
    values["authorization_details"] = dump_details(data.authorization_details)
    await conn.execute(insert(refresh_tokens).values(**values))
    return token


async def find(conn: AsyncConnection, token: str) -> RefreshToken | None:
    """The row for ``token``, locked until commit so two rotations of one token serialise."""
    if not token.startswith(PREFIX) or len(token) > 128:
        return None
    row = (
        await conn.execute(
            select(refresh_tokens)
            .where(refresh_tokens.c.token_hash == digest(token))
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data.pop("token_hash")
    data["scopes"] = tuple(s for s in data["scopes"].split(" ") if s)
    data["resources"] = tuple(json.loads(data["resources"]))
    data["authorization_details"] = load_details(data["authorization_details"])
    return RefreshToken(**data)


async def rotate(conn: AsyncConnection, token: str, now: int) -> bool:
    """Retire ``token`` for its successor; False if it was already rotated or revoked."""
    result = await conn.execute(
        update(refresh_tokens)
        .where(
            refresh_tokens.c.token_hash == digest(token),
            refresh_tokens.c.rotated_at.is_(None),
            refresh_tokens.c.revoked_at.is_(None),
        )
        .values(rotated_at=now)
    )
    return result.rowcount == 1


async def revoke_family(conn: AsyncConnection, family: str, now: int) -> int:
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family == family, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


async def families(
    conn: AsyncConnection, *, sub: str, client_ids: list[str] | None = None
) -> list[tuple[str, str]]:
    """(family, grant_jti) of the user's unrevoked families, optionally for some clients."""
    stmt = select(refresh_tokens.c.family, refresh_tokens.c.grant_jti).where(
        refresh_tokens.c.sub == sub, refresh_tokens.c.revoked_at.is_(None)
    )
    if client_ids is not None:
        stmt = stmt.where(refresh_tokens.c.client_id.in_(client_ids))
    return sorted({(row.family, row.grant_jti) for row in await conn.execute(stmt)})


async def purge(conn: AsyncConnection, before: int) -> None:
    await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.family_expires_at < before))


async def revoke_grant(conn: AsyncConnection, grant_jti: str, now: int) -> int:
    """Revoke every refresh token of the family hanging under ``grant_jti``."""
    result = await conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.grant_jti == grant_jti, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount
