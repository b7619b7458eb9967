"""PostgreSQL's hot path for the token endpoint: one round trip where there were a dozen.

A token exchange through SQLAlchemy took about twelve round trips (BEGIN, two replay inserts,
the subject's ledger row, a client lookup, the lineage walk and its share locks, the ledger
insert, the audit head lock, insert and update, COMMIT), and on a loopback socket each costs
far more CPU in the driver, the event loop and the kernel than the statement costs PostgreSQL.

Here reads go straight through asyncpg (prepared once per connection), and every write is
deferred: :meth:`BatchedStore.commit` hands them to the group commit
(``storage/group_commit.py``), which applies them — together with those of the other requests
ready at the time — through ``deputize_apply_batch``, a PL/pgSQL function created by migration
0006.  A request's writes commit durably and together, or not at all:

1. the one-time values (client assertion and DPoP proof ``jti``), each of which must be new;
2. the rows it did not read: a delegation token's row as its verified claims describe it
   (``RequestStore.token(claimed=...)``) must exist, unrevoked, with that kind, holder and task;
3. the hand-off redemption, which must find the token unused and unrevoked;
4. the share locks on tokens read with ``lock=True`` and on the subject's whole lineage,
   none of which may be revoked or being revoked (SKIP LOCKED: fail closed, never wait);
5. the new ledger rows and their hash-chained audit entries.

If any of 1-4 fails, none of the request's writes happen, and :class:`Conflict` tells the
endpoint to run the request again on an ordinary transaction (``request_store.SqlStore``),
which meets the same condition and refuses the request with the usual error and audit entry.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.settings import ClientConfig
from deputize.server.storage import audit
from deputize.server.storage.clients import client_from_row
from deputize.server.storage.group_commit import Conflict, GroupCommit, HotPathStats
from deputize.server.storage.outage import Timeouts
from deputize.server.storage.tokens import TokenRecord

__all__ = ["BatchedStore", "Conflict", "HotPath", "HotPathStats"]

_GET_TOKEN: Final = "SELECT * FROM issued_tokens WHERE jti = $1"
_GET_CLIENT: Final = "SELECT metadata_json, secret_hash FROM clients WHERE client_id = $1"
_GET_ROLES: Final = "SELECT roles FROM users WHERE sub = $1"


class BatchedStore:
    """A :class:`~deputize.server.storage.request_store.RequestStore` for one request."""

    __slots__ = (
        "_audit", "_commit", "_confirm", "_db", "_held", "_lineage_of", "_pool_timeout",
        "_redeem", "_replay", "_tokens",
    )  # fmt: skip

    def __init__(
        self, db: asyncpg.Pool, commit: GroupCommit, *, pool_timeout: float | None = None
    ) -> None:
        self._db = db  # reads take a connection only while they run
        self._commit = commit
        self._pool_timeout = pool_timeout
        self._replay: list[tuple[str, int]] = []
        self._held: list[str] = []
        self._confirm: list[list[str | None]] = []
        self._lineage_of: str | None = None
        self._redeem: tuple[str, int] | None = None
        self._tokens: list[dict[str, Any]] = []
        self._audit: list[dict[str, Any]] = []

    @property
    def conn(self) -> AsyncConnection:
        # Code without a batched path (consents, say) runs on the ordinary path instead.
        raise Conflict("this step needs the ordinary transaction")

    async def _fetchrow(self, query: str, arg: str) -> asyncpg.Record | None:
        # The wait for a free connection is bounded (``database.pool_timeout``) with
        # asyncio.timeout, which costs a timer; the pool's own ``acquire(timeout=)`` would
        # cost a task per read.  The statement is bounded by the connection's command_timeout.
        async with asyncio.timeout(self._pool_timeout):
            conn = await self._db.acquire()
        try:
            row: asyncpg.Record | None = await conn.fetchrow(query, arg)
        finally:
            await self._db.release(conn)
        return row

    async def remember(self, key: str, expires_at: int) -> bool:
        self._replay.append((key, expires_at))
        return True  # decided at commit

    async def client(self, client_id: str) -> ClientConfig | None:
        row = await self._fetchrow(_GET_CLIENT, client_id)
        return None if row is None else client_from_row(row["metadata_json"], row["secret_hash"])

    async def roles(self, sub: str) -> tuple[str, ...]:
        # Not locked: taking a role away revokes every token acting for the person, and this
        # request holds its parent's lineage (hold_lineage), so it is revoked with the rest.
        row = await self._fetchrow(_GET_ROLES, sub)
        return () if row is None or not row["roles"] else tuple(row["roles"].split())

    async def token(
        self, jti: str, *, lock: bool = False, claimed: TokenRecord | None = None
    ) -> TokenRecord | None:
        if claimed is not None and not lock:
            self._confirm.append([jti, claimed.kind, claimed.client_id, claimed.task])
            return claimed  # checked at commit
        row = await self._fetchrow(_GET_TOKEN, jti)
        if row is None:
            return None
        if lock:
            self._held.append(jti)
        return TokenRecord(**row)

    async def redeem(self, jti: str, now: int) -> bool:
        if self._redeem is not None:
            raise Conflict("one redemption per request")
        self._redeem = (jti, now)
        return True  # decided at commit

    async def hold_lineage(self, jti: str) -> bool:
        if self._lineage_of is not None and self._lineage_of != jti:
            raise Conflict("one lineage per request")
        self._lineage_of = jti
        return True  # decided at commit

    async def record(self, token: TokenRecord) -> None:
        self._tokens.append(token.row())

    async def audit(self, event: audit.AuditEvent, now: int) -> None:
        row = audit.entry(event, now)
        row["tail"] = audit.hash_tail(row)
        self._audit.append(row)

    async def reserve_status_index(self) -> int:
        # Rare (a burst outran the background refill of reserved indexes): the ordinary path
        # reserves one in its transaction.
        raise Conflict("no reserved status list index left")

    async def commit(self) -> None:
        """Apply every deferred write atomically; :class:`Conflict` if one is refused."""
        redeem_jti, redeem_at = self._redeem or (None, None)
        held = sorted(set(self._held))
        item = [self._replay, self._confirm, self._lineage_of, held, redeem_jti, redeem_at]
        await self._commit.apply([*item, self._tokens, self._audit])


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """The pool's default reset is a round trip per release; our connections never leave
    session state behind (no transactions, settings, listeners or advisory locks)."""


class HotPath:
    """The asyncpg pool behind :class:`BatchedStore`, beside SQLAlchemy's pool."""

    def __init__(self, url: str, *, size: int, timeouts: Timeouts | None = None) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._size = size
        self._timeouts = timeouts
        self._pool: asyncpg.Pool | None = None
        self._commit: GroupCommit | None = None
        self.stats = HotPathStats()

    async def open(self) -> None:
        bounds: dict[str, float] = {}
        if self._timeouts is not None:  # connecting, and each statement (storage/outage.py)
            bounds = {"timeout": self._timeouts.connect}
            bounds["command_timeout"] = self._timeouts.statement
        # min_size=0: no floor for the pool to restore in the background, which in an outage
        # would log a traceback per retry; requests open the connections they need.
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=0, max_size=self._size, reset=_no_reset, **bounds
        )
        self._commit = GroupCommit(
            self._pool, self.stats, pool_timeout=self._timeouts.pool if self._timeouts else None
        )

    async def close(self) -> None:
        if self._commit is not None:
            await self._commit.drain()
        if self._pool is not None:
            await self._pool.close()

    def store(self) -> BatchedStore:
        """A store for one request (it holds no connection between its reads)."""
        if self._pool is None or self._commit is None:
            raise RuntimeError("HotPath.open() first")
        pool_timeout = self._timeouts.pool if self._timeouts else None
        return BatchedStore(self._pool, self._commit, pool_timeout=pool_timeout)
