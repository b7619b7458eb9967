"""The audit trail: append-only, hash-chained, written in the transaction of the decision.

Entries are spread over ``AUDIT_CHAINS`` independent chains so concurrent requests do not all
wait on one head row; each chain is a gap-free sequence where every entry's hash covers its
fields and the previous entry's hash.  Editing, deleting or reordering an entry — or dropping
the newest ones — breaks its chain, which :func:`verify` reports.  (Anyone able to rewrite the
whole table can also recompute the hashes: record the heads :func:`verify` prints somewhere
else to anchor them.)

Entries hold identifiers only — client IDs, subjects, ``jti`` values, key thumbprints — never
a secret or a whole token.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import audit_heads, audit_log

AUDIT_CHAINS: Final = 16
GENESIS: Final = "0" * 64

# Event names.
TOKEN_ISSUED: Final = "token_issued"
TOKEN_REFUSED: Final = "token_refused"
EXCHANGE_REFUSED: Final = "exchange_refused"
CLIENT_AUTH_FAILED: Final = "client_auth_failed"
TOKEN_REVOKED: Final = "token_revoked"
KEY_ROTATED: Final = "key_rotated"

_FIELDS: Final = (
    "chain", "seq", "at", "event", "client_id", "subject", "actors", "task", "jti",
    "parent_jti", "jkt", "reason", "details",
)  # fmt: skip


@dataclass(slots=True)  # not frozen: built for every token request, 4x faster
class AuditEvent:
    event: str
    client_id: str | None = None
    subject: str | None = None
    actors: Sequence[str] = ()
    task: str | None = None
    jti: str | None = None
    parent_jti: str | None = None
    jkt: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


# Built once: every issued token appends an entry (json.dumps with options would build a new
# encoder on every call).
_TAIL_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DETAILS_ENCODER = json.JSONEncoder(sort_keys=True)
_LOCK_HEAD = (
    select(audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.chain == bindparam("chain"))
    .with_for_update()
)
_INSERT = insert(audit_log)
_MOVE_HEAD = (
    update(audit_heads)
    .where(audit_heads.c.chain == bindparam("head_chain"))
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def _digest(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        f"{prev_hash}|[{row['chain']},{row['seq']},{hash_tail(row)}".encode()
    ).hexdigest()


def hash_tail(row: Mapping[str, Any]) -> str:
    """The hashed text of an entry after its chain and sequence number.

    An entry's hash is ``sha256(prev_hash + "|[" + chain + "," + seq + "," + tail)``: the JSON
    array of its fields.  Split this way so PostgreSQL's batched path (``storage/batched.py``)
    can append an entry whose ``seq`` and ``prev_hash`` it only learns under the head's lock.
    """
    values = [row[name] for name in _FIELDS[2:]]
    try:
        # The same text as _TAIL_ENCODER's for the values an entry holds (strings, integers,
        # None): checked over every code point in tests/server/test_audit.py.  Several times
        # faster, and once per issued token.
        return orjson.dumps(values).decode("utf-8")[1:]
    except TypeError:  # a lone surrogate, say: orjson refuses what the standard library writes
        return _TAIL_ENCODER.encode(values)[1:]


def _details_text(details: Mapping[str, Any]) -> str:
    """An entry's details as JSON text with sorted keys (read back by :func:`query`).  The
    hash covers this text as stored, so its spelling may differ between versions."""
    try:
        return orjson.dumps(dict(details), option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:  # what orjson does not take (an integer past 64 bits, say)
        return _DETAILS_ENCODER.encode(dict(details))


def entry(event: AuditEvent, now: int) -> dict[str, Any]:
    """The stored fields of ``event``, on a chain picked at random (load spreading)."""
    return {
        "chain": int(random.random() * AUDIT_CHAINS),  # noqa: S311 - load spreading only
        "at": now,
        "event": event.event,
        "client_id": event.client_id,
        "subject": event.subject,
        "actors": " ".join(event.actors) or None,
        "task": event.task,
        "jti": event.jti,
        "parent_jti": event.parent_jti,
        "jkt": event.jkt,
        "reason": event.reason,
        "details": _details_text(event.details) if event.details else None,
    }


async def append(conn: AsyncConnection, event: AuditEvent, now: int) -> None:
    """Add ``event`` to one of the chains, inside the caller's transaction."""
    row = entry(event, now)
    head = (await conn.execute(_LOCK_HEAD, {"chain": row["chain"]})).one()
    row["seq"] = head.seq + 1
    digest = _digest(head.hash, row)
    await conn.execute(_INSERT, {**row, "prev_hash": head.hash, "hash": digest})
    await conn.execute(
        _MOVE_HEAD, {"head_chain": row["chain"], "new_seq": row["seq"], "new_hash": digest}
    )


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    problems: list[str]
    heads: dict[int, str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(conn: AsyncConnection) -> Verification:
    """Walk every chain and recompute every hash."""
    problems: list[str] = []
    heads: dict[int, str] = {}
    count = 0
    head_rows = (await conn.execute(select(audit_heads).order_by(audit_heads.c.chain))).all()
    for head in head_rows:
        prev_hash, expected_seq = GENESIS, 1
        rows = await conn.execute(
            select(audit_log).where(audit_log.c.chain == head.chain).order_by(audit_log.c.seq)
        )
        for entry in rows:
            data: dict[str, Any] = dict(entry._mapping)
            count += 1
            where = f"chain {head.chain} entry {data['seq']}"
            if data["seq"] != expected_seq:
                problems.append(f"{where}: expected entry {expected_seq} (deleted or reordered)")
            if data["prev_hash"] != prev_hash:
                problems.append(f"{where}: does not follow the previous entry")
            if _digest(data["prev_hash"], data) != data["hash"]:
                problems.append(f"{where}: contents do not match its hash (edited)")
            prev_hash, expected_seq = data["hash"], data["seq"] + 1
        if (head.seq, head.hash) != (expected_seq - 1, prev_hash):
            problems.append(f"chain {head.chain}: newest entries missing (head is {head.seq})")
        heads[head.chain] = head.hash
    return Verification(entries=count, problems=problems, heads=heads)


async def query(
    conn: AsyncConnection,
    *,
    subject: str | None = None,
    actor: str | None = None,
    task: str | None = None,
    since: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Entries matching every given filter, oldest first.  ``actor`` matches the acting client
    or any actor in the chain."""
    stmt = select(audit_log)
    if subject is not None:
        stmt = stmt.where(audit_log.c.subject == subject)
    if task is not None:
        stmt = stmt.where(audit_log.c.task == task)
    if since is not None:
        stmt = stmt.where(audit_log.c.at >= since)
    if actor is not None:
        stmt = stmt.where(
            (audit_log.c.client_id == actor)
            | (audit_log.c.actors == actor)
            | audit_log.c.actors.like(f"{_like(actor)} %", escape="\\")
            | audit_log.c.actors.like(f"% {_like(actor)}", escape="\\")
            | audit_log.c.actors.like(f"% {_like(actor)} %", escape="\\")
        )
    stmt = stmt.order_by(audit_log.c.at, audit_log.c.chain, audit_log.c.seq).limit(limit)
    result = []
    for row in await conn.execute(stmt):
        entry = dict(row._mapping)
        entry["actors"] = entry["actors"].split(" ") if entry["actors"] else []
        entry["details"] = json.loads(entry["details"]) if entry["details"] else {}
        result.append(entry)
    return result


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
