"""The ledger of issued tokens: what introspection and revocation consult."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import issued_tokens


@dataclass(frozen=True, slots=True)
class TokenRecord:
    jti: str
    client_id: str
    subject: str
    issued_at: int
    expires_at: int
    jkt: str | None = None
    parent_jti: str | None = None
    revoked_at: int | None = None


async def record(conn: AsyncConnection, token: TokenRecord) -> None:
    await conn.execute(
        insert(issued_tokens).values(
            jti=token.jti,
            client_id=token.client_id,
            subject=token.subject,
            parent_jti=token.parent_jti,
            jkt=token.jkt,
            issued_at=token.issued_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
        )
    )


async def get(conn: AsyncConnection, jti: str) -> TokenRecord | None:
    row = (await conn.execute(select(issued_tokens).where(issued_tokens.c.jti == jti))).first()
    return None if row is None else TokenRecord(**row._mapping)


async def revoke(conn: AsyncConnection, jti: str, now: int) -> bool:
    result = await conn.execute(
        update(issued_tokens)
        .where(issued_tokens.c.jti == jti, issued_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


async def purge_expired(conn: AsyncConnection, before: int) -> int:
    result = await conn.execute(delete(issued_tokens).where(issued_tokens.c.expires_at < before))
    return result.rowcount
