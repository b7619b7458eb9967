"""Clients that registered themselves (RFC 7591) and their RFC 7592 records.

The client is a row of ``clients`` like any runtime client (``storage/clients.py``), so
``/authorize`` and ``/token`` find it the same way; ``registrations`` keeps beside it the hash
of its registration access token, the metadata as registered and when it was first used.
Every change is audited in the same transaction: ``client_registered``, ``client_updated``,
``client_deleted`` — what the client may do and where the request came from, never a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.settings import ClientConfig
from deputize.server.storage import audit
from deputize.server.storage.tables import clients, issued_tokens, registrations

#: Unused registrations removed per cleanup run: bounded work on the request that triggers it.
_CLEANUP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Registration:
    client_id: str
    token_hash: str
    metadata: dict[str, Any]
    created_at: int
    used_at: int | None


def _details(client: ClientConfig, source: str | None) -> dict[str, Any]:
    return {
        "by": "registration",
        "source": source,
        "auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "scopes": list(client.scopes),
        "redirect_uris": list(client.redirect_uris),
    }


async def add(
    conn: AsyncConnection,
    client: ClientConfig,
    metadata: dict[str, Any],
    token_hash: str,
    now: int,
    *,
    source: str | None,
) -> None:
    """Store a newly registered client (its id is fresh and random: a clash is a bug)."""
    await conn.execute(
        clients.insert().values(
            client_id=client.client_id,
            secret_hash=client.client_secret_hash,
            metadata_json=json.dumps(client.to_record()),
            created_at=now,
        )
    )
    await conn.execute(
        registrations.insert().values(
            client_id=client.client_id,
            token_hash=token_hash,
            metadata_json=json.dumps(metadata),
            created_at=now,
        )
    )
    event = audit.AuditEvent(
        event=audit.CLIENT_REGISTERED, client_id=client.client_id, details=_details(client, source)
    )
    await audit.append(conn, event, now)


async def get(conn: AsyncConnection, client_id: str, *, lock: bool = False) -> Registration | None:
    """The registration of ``client_id``, only while its client row exists too."""
    query = (
        select(registrations)
        .join(clients, clients.c.client_id == registrations.c.client_id)
        .where(registrations.c.client_id == client_id)
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=registrations)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return Registration(
        client_id=row.client_id,
        token_hash=row.token_hash,
        metadata=json.loads(row.metadata_json),
        created_at=row.created_at,
        used_at=row.used_at,
    )


async def replace(
    conn: AsyncConnection,
    client: ClientConfig,
    metadata: dict[str, Any],
    token_hash: str,
    now: int,
    *,
    source: str | None,
) -> bool:
    """RFC 7592 §2.2: the client's metadata replaced as a whole, with a new access token."""
    result = await conn.execute(
        update(clients)
        .where(clients.c.client_id == client.client_id)
        .values(secret_hash=client.client_secret_hash, metadata_json=json.dumps(client.to_record()))
    )
    if result.rowcount != 1:
        return False
    await conn.execute(
        update(registrations)
        .where(registrations.c.client_id == client.client_id)
        .values(token_hash=token_hash, metadata_json=json.dumps(metadata))
    )
    event = audit.AuditEvent(
        event=audit.CLIENT_UPDATED, client_id=client.client_id, details=_details(client, source)
    )
    await audit.append(conn, event, now)
    return True


async def remove(
    conn: AsyncConnection, client_id: str, now: int, *, reason: str, source: str | None
) -> bool:
    """Delete the client and its registration; False if it was already gone."""
    result = await conn.execute(delete(clients).where(clients.c.client_id == client_id))
    await conn.execute(delete(registrations).where(registrations.c.client_id == client_id))
    if result.rowcount != 1:
        return False
    event = audit.AuditEvent(
        event=audit.CLIENT_DELETED,
        client_id=client_id,
        reason=reason,
        details={"by": "registration", "source": source},
    )
    await audit.append(conn, event, now)
    return True


def _has_tokens() -> Any:
    return exists().where(issued_tokens.c.client_id == registrations.c.client_id)


async def mark_used(conn: AsyncConnection, now: int) -> None:
    """Note when each registered client was first seen at ``/token``: it has a ledger row.

    Ledger rows outlive their tokens by an hour (``app.py``'s maintenance), and this runs
    before they are purged, so a client that obtained any token is marked."""
    await conn.execute(
        update(registrations)
        .where(registrations.c.used_at.is_(None), _has_tokens())
        .values(used_at=now)
    )


async def remove_unused(conn: AsyncConnection, now: int, *, older_than: int) -> int:
    """Delete up to a batch of registrations made before ``older_than`` and never used at
    ``/token``; returns how many."""
    await mark_used(conn, now)
    rows = await conn.execute(
        select(registrations.c.client_id)
        .where(registrations.c.used_at.is_(None), registrations.c.created_at < older_than)
        .order_by(registrations.c.created_at)
        .limit(_CLEANUP_BATCH)
    )
    removed = 0
    for (client_id,) in rows.all():
        if await remove(conn, client_id, now, reason="unused", source=None):
            removed += 1
    return removed
