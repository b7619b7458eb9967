"""Authorization codes (RFC 6749 §4.1.2): stored as SHA-256, single use, seconds-long."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import authorization_codes


@dataclass(frozen=True, slots=True)
class Code:
    client_id: str
    sub: str
    redirect_uri: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    code_challenge: str
    nonce: str | None
    dpop_jkt: str | None
    auth_time: int
    consent_id: str
    expires_at: int
    used_at: int | None = None
    grant_jti: str | None = None
    authorization_details: list[dict[str, Any]] | None = None
    """RFC 9396: what the person allowed, normalised; None when none were asked for."""


def dump_details(details: list[dict[str, Any]] | None) -> str | None:
    """An ``authorization_details`` column's text (codes, consents, refresh tokens)."""
    return None if details is None else json.dumps(details, separators=(",", ":"))


def load_details(text: str | None) -> list[dict[str, Any]] | None:
    return None if text is None else list(json.loads(text))


def digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


async def store(conn: AsyncConnection, code: str, data: Code) -> None:
    await conn.execute(
        insert(authorization_codes).values(
            code_hash=digest(code),
            client_id=data.client_id,
            sub=data.sub,
            redirect_uri=data.redirect_uri,
            scopes=" ".join(data.scopes),
            resources=json.dumps(list(data.resources)),
            code_challenge=data.code_challenge,
            nonce=data.nonce,
            dpop_jkt=data.dpop_jkt,
            auth_time=data.auth_time,
            consent_id=data.consent_id,
            expires_at=data.expires_at,
            authorization_details=dump_details(data.authorization_details),
        )
    )


async def take(conn: AsyncConnection, code: str) -> Code | None:
    """The code's row, locked until commit (concurrent redemptions queue here)."""
    if len(code) > 256:
        return None
    row = (
        await conn.execute(
            select(authorization_codes)
            .where(authorization_codes.c.code_hash == digest(code))
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data.pop("code_hash")
    data["scopes"] = tuple(s for s in data["scopes"].split(" ") if s)
    data["resources"] = tuple(json.loads(data["resources"]))
    data["authorization_details"] = load_details(data["authorization_details"])
    return Code(**data)


async def mark_used(conn: AsyncConnection, code: str, now: int, grant_jti: str) -> bool:
    """Use the code once; False if it was used already (a replay)."""
    result = await conn.execute(
        update(authorization_codes)
        .where(
            authorization_codes.c.code_hash == digest(code),
            authorization_codes.c.used_at.is_(None),
        )
        .values(used_at=now, grant_jti=grant_jti)
    )
    return result.rowcount == 1


async def purge(conn: AsyncConnection, before: int) -> None:
    await conn.execute(delete(authorization_codes).where(authorization_codes.c.expires_at < before))
