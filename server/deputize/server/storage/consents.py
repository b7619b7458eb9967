"""Consents: what a user allowed a client, and the agents it acts through, to do for them.

A consent is the person's authorisation behind delegation rule 4: an agent may start acting
for a user only while a live consent names it (as the client itself, or as one of the client's
``delegate_agents``).  Revoking one also revokes the tokens it allowed (``consent_flow.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert as sql_insert
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.codes import dump_details, load_details
from deputize.server.storage.tables import consents


@dataclass(frozen=True, slots=True)
class Consent:
    id: str
    sub: str
    client_id: str
    scopes: tuple[str, ...]
    agents: tuple[str, ...]
    created_at: int
    expires_at: int
    revoked_at: int | None
    authorization_details: list[dict[str, Any]] | None = None
    """RFC 9396 entries the person allowed (normalised), None when none were asked for."""

    def live(self, now: int) -> bool:
        return self.revoked_at is None and self.expires_at > now


def _from_row(row: object) -> Consent:
    data = dict(row._mapping)  # type: ignore[attr-defined]
    data["scopes"] = tuple(s for s in data["scopes"].split(" ") if s)
    data["agents"] = tuple(a for a in data["agents"].split(" ") if a)
    data["authorization_details"] = load_details(data["authorization_details"])
    return Consent(**data)


async def record(
    conn: AsyncConnection,
    *,
    sub: str,
    client_id: str,
    scopes: list[str],
    agents: list[str],
    now: int,
    lifetime: int,
    details: list[dict[str, Any]] | None = None,
) -> Consent:
    """Record consent.  A live consent to the same client is widened and extended in place
    (same id, so refresh tokens issued under it stay valid); else a new one is made.
    ``details`` (RFC 9396 entries) are added to the consent's, each kept once."""
    existing = (
        await conn.execute(
            select(consents)
            .where(
                consents.c.sub == sub,
                consents.c.client_id == client_id,
                consents.c.revoked_at.is_(None),
                consents.c.expires_at > now,
            )
            .order_by(consents.c.created_at.desc())
            .with_for_update()
        )
    ).first()
    if existing is not None:
        old = _from_row(existing)
        merged_scopes = list(dict.fromkeys([*old.scopes, *scopes]))
        merged_agents = list(dict.fromkeys([*old.agents, *agents]))
        merged_details = _merged(old.authorization_details, details)
        await conn.execute(
            update(consents)
            .where(consents.c.id == old.id)
            .values(
                scopes=" ".join(merged_scopes),
                agents=" ".join(merged_agents),
                expires_at=now + lifetime,
                authorization_details=dump_details(merged_details),
            )
        )
        found = await get(conn, old.id)
        assert found is not None
        return found
    consent = Consent(
        id=secrets.token_hex(16),
        sub=sub,
        client_id=client_id,
        scopes=tuple(scopes),
        agents=tuple(agents),
        created_at=now,
        expires_at=now + lifetime,
        revoked_at=None,
        authorization_details=details,
    )
    await conn.execute(
        sql_insert(consents).values(
            id=consent.id,
            sub=sub,
            client_id=client_id,
            scopes=" ".join(scopes),
            agents=" ".join(agents),
            created_at=now,
            expires_at=consent.expires_at,
            revoked_at=None,
            authorization_details=dump_details(details),
        )
    )
    return consent


def _merged(
    old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    if old is None or new is None:
        return new if old is None else old
    return [*old, *(entry for entry in new if entry not in old)]


async def get(conn: AsyncConnection, consent_id: str, *, lock: bool = False) -> Consent | None:
    stmt = select(consents).where(consents.c.id == consent_id)
    if lock:
        stmt = stmt.with_for_update(read=True)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _from_row(row)


async def for_user(
    conn: AsyncConnection, sub: str, now: int, *, lock: bool = False
) -> list[Consent]:
    """The user's live consents.  ``lock`` share-locks them (PostgreSQL) until commit, so a
    revocation waits for an exchange that relies on one, and then sees what it minted."""
    stmt = (
        select(consents)
        .where(consents.c.sub == sub, consents.c.revoked_at.is_(None), consents.c.expires_at > now)
        .order_by(consents.c.created_at)
    )
    if lock:
        stmt = stmt.with_for_update(read=True)
    return [_from_row(row) for row in await conn.execute(stmt)]


async def current(conn: AsyncConnection, sub: str, client_id: str, now: int) -> Consent | None:
    found = [c for c in await for_user(conn, sub, now) if c.client_id == client_id]
    return found[-1] if found else None


async def list_all(
    conn: AsyncConnection, *, sub: str | None = None, include_revoked: bool = False
) -> list[Consent]:
    stmt = select(consents).order_by(consents.c.created_at)
    if sub is not None:
        stmt = stmt.where(consents.c.sub == sub)
    if not include_revoked:
        stmt = stmt.where(consents.c.revoked_at.is_(None))
    return [_from_row(row) for row in await conn.execute(stmt)]


async def mark_revoked(conn: AsyncConnection, consent_id: str, now: int) -> Consent | None:
    """Mark a live consent revoked (the row lock waits for exchanges relying on it)."""
    result = await conn.execute(
        update(consents)
        .where(consents.c.id == consent_id, consents.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount != 1:
        return None
    return await get(conn, consent_id)
