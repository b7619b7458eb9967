"""Approval requests (OpenID CIBA Core 1.0, poll mode): stored by the SHA-256 of their
``auth_req_id``, bound to the agent that asked, waiting for the person's answer.

A request moves once: ``pending`` → ``approved`` or ``denied`` (by the person, an approver or
an operator) or ``expired``; an approved one → ``redeemed`` when its token is issued, so an
``auth_req_id`` yields one token.  Every move is a conditional UPDATE: two answers, or two
redemptions, cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import backchannel_requests as table

PENDING: Final = "pending"
APPROVED: Final = "approved"
DENIED: Final = "denied"
EXPIRED: Final = "expired"
REDEEMED: Final = "redeemed"
_MAX_ID: Final = 128


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    id: str
    client_id: str
    sub: str
    actors: tuple[str, ...]
    """The agents acting for ``sub``, oldest first; the last one asked (``client_id``)."""
    parent_jti: str
    jkt: str
    task: str | None
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    authorization_details: list[dict[str, Any]]
    binding_message: str | None
    created_at: int
    expires_at: int
    interval: int
    last_polled_at: int | None
    status: str
    decided_by: str | None = None
    decided_at: int | None = None

    def state(self, now: int) -> str:
        """The status as of ``now``: a pending request past its expiry is expired."""
        return EXPIRED if self.status == PENDING and self.expires_at <= now else self.status


def digest(auth_req_id: str) -> str:
    return hashlib.sha256(auth_req_id.encode("utf-8")).hexdigest()


def new_auth_req_id() -> str:
    """CIBA §7.3: unique, unguessable (256 random bits), opaque to the client."""
    return secrets.token_urlsafe(32)


def _row(row: Any) -> ApprovalRequest:
    data = dict(row._mapping)
    data.pop("auth_req_hash")
    data["actors"] = tuple(a for a in data["actors"].split(" ") if a)
    data["scopes"] = tuple(s for s in data["scopes"].split(" ") if s)
    data["audience"] = tuple(json.loads(data["audience"]))
    data["authorization_details"] = list(json.loads(data["authorization_details"]))
    return ApprovalRequest(**data)


async def create(conn: AsyncConnection, auth_req_id: str, request: ApprovalRequest) -> None:
    await conn.execute(
        insert(table).values(
            id=request.id,
            auth_req_hash=digest(auth_req_id),
            client_id=request.client_id,
            sub=request.sub,
            actors=" ".join(request.actors),
            parent_jti=request.parent_jti,
            jkt=request.jkt,
            task=request.task,
            scopes=" ".join(request.scopes),
            audience=json.dumps(list(request.audience)),
            authorization_details=json.dumps(request.authorization_details),
            binding_message=request.binding_message,
            created_at=request.created_at,
            expires_at=request.expires_at,
            interval=request.interval,
            last_polled_at=None,
            status=PENDING,
        )
    )


async def by_auth_req_id(conn: AsyncConnection, auth_req_id: str) -> ApprovalRequest | None:
    """The request ``auth_req_id`` names, locked until commit (polls of one request queue)."""
    if len(auth_req_id) > _MAX_ID:
        return None
    stmt = select(table).where(table.c.auth_req_hash == digest(auth_req_id)).with_for_update()
    row = (await conn.execute(stmt)).first()
    return None if row is None else _row(row)


async def get(conn: AsyncConnection, request_id: str) -> ApprovalRequest | None:
    if len(request_id) > _MAX_ID:
        return None
    row = (await conn.execute(select(table).where(table.c.id == request_id))).first()
    return None if row is None else _row(row)


async def pending(
    conn: AsyncConnection, now: int, *, sub: str | None = None
) -> list[ApprovalRequest]:
    """Requests still waiting, oldest first (``sub``: only those acting for that person)."""
    stmt = select(table).where(table.c.status == PENDING, table.c.expires_at > now)
    if sub is not None:
        stmt = stmt.where(table.c.sub == sub)
    return [_row(r) for r in await conn.execute(stmt.order_by(table.c.created_at, table.c.id))]


async def decide(
    conn: AsyncConnection, request_id: str, *, approve: bool, by: str, now: int
) -> bool:
    """Answer a pending, unexpired request once; False if it was answered or expired."""
    result = await conn.execute(
        update(table)
        .where(table.c.id == request_id, table.c.status == PENDING, table.c.expires_at > now)
        .values(status=APPROVED if approve else DENIED, decided_by=by, decided_at=now)
    )
    return result.rowcount == 1


async def polled(conn: AsyncConnection, request_id: str, now: int, interval: int) -> None:
    await conn.execute(
        update(table).where(table.c.id == request_id).values(last_polled_at=now, interval=interval)
    )


async def move(conn: AsyncConnection, request_id: str, old: str, new: str) -> bool:
    """``old`` → ``new`` (expiry, redemption), once."""
    result = await conn.execute(
        update(table).where(table.c.id == request_id, table.c.status == old).values(status=new)
    )
    return result.rowcount == 1


async def purge(conn: AsyncConnection, before: int) -> None:
    await conn.execute(delete(table).where(table.c.expires_at < before))


async def overdue(conn: AsyncConnection, now: int, limit: int = 500) -> list[ApprovalRequest]:
    """Pending requests past their expiry (the maintenance task expires them in batches)."""
    stmt = (
        select(table)
        .where(table.c.status == PENDING, table.c.expires_at <= now)
        .order_by(table.c.expires_at)
        .limit(limit)
    )
    return [_row(r) for r in await conn.execute(stmt)]
