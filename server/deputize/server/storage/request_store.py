"""What one token request reads from and writes to the database, behind one small interface.

Client authentication, the DPoP replay check, the grants and minting talk to a
:class:`RequestStore`, never to a connection, so the same decision code runs on two stores:

- :class:`SqlStore` runs each statement at once in the request's SQLAlchemy transaction.  It is
  the store on SQLite, for every refused request (whose used ``jti`` values and audit entry must
  commit together) and for grants without a batched path.
- :class:`~deputize.server.storage.batched.BatchedStore` is PostgreSQL's hot path: it reads
  through a raw driver connection and defers every write — replay entries, redemption, lineage
  locks, the new ledger row, the audit entry — to one atomic call at the end.  A write that
  would fail there (a replay, a revoked ancestor, a used hand-off) makes the endpoint run the
  request again on a :class:`SqlStore`, which refuses it the ordinary way.

So the checks stay in one place and exact; only the number of round trips changes.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.settings import ClientConfig
from deputize.server.storage import audit, replay, status_list, tokens, users
from deputize.server.storage import clients as client_rows
from deputize.server.storage.tokens import TokenRecord


class RequestStore(Protocol):
    async def remember(self, key: str, expires_at: int) -> bool:
        """Record a one-time value; False if it was seen before (see ``storage.replay``)."""
        ...

    async def client(self, client_id: str) -> ClientConfig | None:
        """A client registered at runtime (``deputize clients add``)."""
        ...

    async def roles(self, sub: str) -> tuple[str, ...]:
        """A user's roles in the user store (none for an unknown user)."""
        ...

    async def token(
        self, jti: str, *, lock: bool = False, claimed: TokenRecord | None = None
    ) -> TokenRecord | None:
        """The ledger row of ``jti``; ``lock`` keeps it from being revoked until commit.

        ``claimed`` is the row as the token's verified claims describe it: a store that
        defers writes may return it unread, and must then refuse at commit unless the row
        exists, is unrevoked and agrees on kind, holder and task.
        """
        ...

    async def redeem(self, jti: str, now: int) -> bool:
        """Use a single-use token; False if it was already used or revoked."""
        ...

    async def hold_lineage(self, jti: str) -> bool:
        """Keep ``jti`` and its ancestors from being revoked until commit; False if any is."""
        ...

    async def record(self, token: TokenRecord) -> None: ...

    async def audit(self, event: audit.AuditEvent, now: int) -> None: ...

    async def reserve_status_index(self) -> int:
        """One status list index, reserved with the request's writes (the process's reserved
        blocks ran out)."""
        ...

    @property
    def conn(self) -> AsyncConnection:
        """The SQLAlchemy connection, for code that has no batched path.  The batched store
        raises ``Conflict`` here, and the request is decided on the ordinary path instead."""
        ...


class SqlStore:
    """Every call is a statement in the caller's transaction."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @property
    def conn(self) -> AsyncConnection:
        return self._conn

    async def remember(self, key: str, expires_at: int) -> bool:
        return await replay.remember(self._conn, key, expires_at)

    async def client(self, client_id: str) -> ClientConfig | None:
        return await client_rows.get(self._conn, client_id)

    async def roles(self, sub: str) -> tuple[str, ...]:
        user = await users.get(self._conn, sub)
        return () if user is None else user.roles

    async def token(
        self, jti: str, *, lock: bool = False, claimed: TokenRecord | None = None
    ) -> TokenRecord | None:
        return await tokens.get(self._conn, jti, lock=lock)

    async def redeem(self, jti: str, now: int) -> bool:
        return await tokens.redeem(self._conn, jti, now)

    async def hold_lineage(self, jti: str) -> bool:
        return await tokens.hold_lineage(self._conn, jti)

    async def record(self, token: TokenRecord) -> None:
        await tokens.record(self._conn, token)

    async def audit(self, event: audit.AuditEvent, now: int) -> None:
        await audit.append(self._conn, event, now)

    async def reserve_status_index(self) -> int:
        return await status_list.reserve(self._conn, 1)
