"""Clients registered at runtime.  Clients from the config file never live here.

Every change of a row is audited in its own transaction (``client_added``,
``client_removed``): who made it and what the client may do, never its secret or hash.
"""

from __future__ import annotations

import json
from functools import lru_cache

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.settings import ClientConfig, ConfigError, parse_client
from deputize.server.storage import audit
from deputize.server.storage.tables import clients, registrations


@lru_cache(maxsize=1024)
def client_from_row(metadata_json: str, secret_hash: str | None) -> ClientConfig:
    """The client a row describes, parsed once per distinct row.

    A runtime client is read from the database on every request, so a removal or a change is
    seen at once on every instance; what is memoised is only the parsing of the same text into
    the same (frozen) ``ClientConfig``, about 18 µs a request.  Bounded, like the table's use.
    """
    data = json.loads(metadata_json)
    data = {k: v for k, v in data.items() if v is not None}
    # Written only by Deputize (``registration/service.py``), never by the client itself.
    registered = data.pop("registered", False) is True
    if secret_hash is not None:
        data["client_secret_hash"] = secret_hash
    where = f"client {data.get('client_id')!r} in the database"
    return parse_client(data, where, env={}, registered=registered)


async def get(conn: AsyncConnection, client_id: str) -> ClientConfig | None:
    row = (
        await conn.execute(
            select(clients.c.metadata_json, clients.c.secret_hash).where(
                clients.c.client_id == client_id
            )
        )
    ).first()
    return None if row is None else client_from_row(row.metadata_json, row.secret_hash)


async def list_all(conn: AsyncConnection) -> list[ClientConfig]:
    rows = await conn.execute(
        select(clients.c.metadata_json, clients.c.secret_hash).order_by(clients.c.client_id)
    )
    return [client_from_row(row.metadata_json, row.secret_hash) for row in rows]


async def add(conn: AsyncConnection, client: ClientConfig, now: int, *, by: str) -> None:
    """Register ``client``; ConfigError if its id is taken, also when two adds race.  ``by``
    names who asked (``cli``), for the audit entry."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    result = await conn.execute(
        insert(clients)
        .values(
            client_id=client.client_id,
            secret_hash=client.client_secret_hash,
            metadata_json=json.dumps(client.to_record()),
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
    if result.rowcount != 1:
        raise ConfigError(f"client_id {client.client_id!r} is already registered")
    details = {
        "by": by,
        "auth_method": client.token_endpoint_auth_method,
        "agent": client.agent,
        "grant_types": list(client.grant_types),
        "scopes": list(client.scopes),
    }
    await audit.append(
        conn,
        audit.AuditEvent(event=audit.CLIENT_ADDED, client_id=client.client_id, details=details),
        now,
    )


async def remove(conn: AsyncConnection, client_id: str, now: int, *, by: str) -> bool:
    """Remove a runtime client; False if there is none by that id (and nothing is audited)."""
    result = await conn.execute(delete(clients).where(clients.c.client_id == client_id))
    if result.rowcount != 1:
        return False
    # A registered client's RFC 7592 record goes with it (``storage/registrations.py``).
    await conn.execute(delete(registrations).where(registrations.c.client_id == client_id))
    await audit.append(
        conn,
        audit.AuditEvent(event=audit.CLIENT_REMOVED, client_id=client_id, details={"by": by}),
        now,
    )
    return True
