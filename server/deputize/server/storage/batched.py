"""PostgreSQL's hot path for the token endpoint: one round trip where there were a dozen.

A token exchange through SQLAlchemy took about twelve round trips (BEGIN, two replay inserts,
the subject's ledger row, a client lookup, the lineage walk and its share locks, the ledger
insert, the audit head lock, insert and update, COMMIT), and on a loopback socket each costs
far more CPU in the driver, the event loop and the kernel than the statement costs PostgreSQL.

Here reads go straight through asyncpg (prepared once per connection), and every write is
deferred: :meth:`BatchedStore.commit` hands them all to ``deputize_apply`` — a PL/pgSQL
function created by migration 0005 — which runs them in one implicit transaction, so they
commit durably and together, or not at all:

1. the one-time values (client assertion and DPoP proof ``jti``), each of which must be new;
2. the rows it did not read: a delegation token's row as its verified claims describe it
   (``RequestStore.token(claimed=...)``) must exist, unrevoked, with that kind, holder and task;
3. the hand-off redemption, which must find the token unused and unrevoked;
4. the share locks on tokens read with ``lock=True`` and on the subject's whole lineage,
   none of which may be revoked or being revoked (SKIP LOCKED: fail closed, never wait);
5. the new ledger rows and their hash-chained audit entries.

If any of 1-4 fails, the function raises, nothing is written, and :class:`Conflict` tells the
endpoint to run the request again on an ordinary transaction (``request_store.SqlStore``),
which meets the same condition and refuses the request with the usual error and audit entry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.settings import ClientConfig
from deputize.server.storage import audit
from deputize.server.storage.clients import client_from_row
from deputize.server.storage.tokens import TokenRecord

#: SQLSTATE class of the errors ``deputize_apply`` raises on purpose (migration 0005).
_CONFLICT_CLASS: Final = "DZ"
_GET_TOKEN: Final = "SELECT * FROM issued_tokens WHERE jti = $1"
_GET_CLIENT: Final = "SELECT metadata_json, secret_hash FROM clients WHERE client_id = $1"
_APPLY: Final = (
    "SELECT deputize_apply($1::jsonb, $2::jsonb, $3, $4::text[], $5, $6, $7::jsonb, $8::jsonb)"
)


class Conflict(Exception):
    """A deferred write was refused; the request must be decided on an ordinary transaction."""


@dataclass(slots=True)
class HotPathStats:
    """How often the hot path committed, and how often a deferred write was refused there."""

    applied: int = 0
    conflicts: int = 0


class BatchedStore:
    """A :class:`~deputize.server.storage.request_store.RequestStore` for one request."""

    __slots__ = (
        "_audit", "_confirm", "_db", "_held", "_lineage_of", "_redeem", "_replay", "_stats",
        "_tokens",
    )  # fmt: skip

    def __init__(self, db: asyncpg.Connection, stats: HotPathStats) -> None:
        self._db = db
        self._stats = stats
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

    async def remember(self, key: str, expires_at: int) -> bool:
        self._replay.append((key, expires_at))
        return True  # decided at commit

    async def client(self, client_id: str) -> ClientConfig | None:
        row = await self._db.fetchrow(_GET_CLIENT, client_id)
        return None if row is None else client_from_row(row["metadata_json"], row["secret_hash"])

    async def token(
        self, jti: str, *, lock: bool = False, claimed: TokenRecord | None = None
    ) -> TokenRecord | None:
        if claimed is not None and not lock:
            self._confirm.append([jti, claimed.kind, claimed.client_id, claimed.task])
            return claimed  # checked at commit
        row = await self._db.fetchrow(_GET_TOKEN, jti)
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
        try:
            await self._db.fetchval(
                _APPLY,
                json.dumps(self._replay),
                json.dumps(self._confirm),
                self._lineage_of,
                sorted(set(self._held)),
                self._redeem[0] if self._redeem else None,
                self._redeem[1] if self._redeem else None,
                json.dumps(self._tokens),
                json.dumps(self._audit, ensure_ascii=False),
            )
        except asyncpg.PostgresError as exc:
            if str(getattr(exc, "sqlstate", "")).startswith(_CONFLICT_CLASS):
                self._stats.conflicts += 1
                raise Conflict(str(exc)) from None
            raise
        self._stats.applied += 1


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """The pool's default reset is a round trip per release; our connections never leave
    session state behind (no transactions, settings, listeners or advisory locks)."""


class HotPath:
    """The asyncpg pool behind :class:`BatchedStore`, beside SQLAlchemy's pool."""

    def __init__(self, url: str, *, size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self.stats = HotPathStats()

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._size, reset=_no_reset
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def store(self) -> AsyncIterator[BatchedStore]:
        if self._pool is None:
            raise RuntimeError("HotPath.open() first")
        async with self._pool.acquire() as conn:
            yield BatchedStore(conn, self.stats)
