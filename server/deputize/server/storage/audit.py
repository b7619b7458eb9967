"""The audit trail: append-only, hash-chained, written in the transaction of the decision.

Entries are spread over ``AUDIT_CHAINS`` independent chains so concurrent requests do not all
wait on one head row; each chain is a gap-free sequence where every entry's hash covers its
fields and the previous entry's hash.  Editing, deleting or reordering an entry — or dropping
the newest ones — breaks its chain, which :func:`verify` reports.  (Anyone able to rewrite the
whole table can also recompute the hashes: record the heads :func:`verify` prints somewhere
else to anchor them.)

Across the chains, ``id`` is the total order: the database numbers every entry as it is
inserted (a sequence on PostgreSQL, the next number under SQLite's single writer), and
:func:`query` lists entries by it, so the trail reads in the order things happened whatever
chain each landed on.  ``at_us`` is the entry's time in microseconds (``at`` keeps whole
seconds, for ``--since`` and for entries written before migration 0007).

Entries hold identifiers only — client IDs, subjects, ``jti`` values, key thumbprints — never
a secret or a whole token.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import bindparam, func, insert, select, update
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
CLIENT_ADDED: Final = "client_added"
CLIENT_REMOVED: Final = "client_removed"
#: RFC 7591/7592: a client registered, updated or deleted itself (or expired unused).
CLIENT_REGISTERED: Final = "client_registered"
CLIENT_UPDATED: Final = "client_updated"
CLIENT_DELETED: Final = "client_deleted"

#: Every event name the server writes, for ``deputize audit --event``.  The names defined
#: beside the code that writes them (accounts, sign-in, grants) are repeated here because
#: storage never imports the layers above it; tests/server/test_audit_order.py checks that
#: every name written anywhere is listed.
EVENTS: Final = frozenset({
    TOKEN_ISSUED, TOKEN_REFUSED, EXCHANGE_REFUSED, CLIENT_AUTH_FAILED, TOKEN_REVOKED,
    KEY_ROTATED, CLIENT_ADDED, CLIENT_REMOVED, CLIENT_REGISTERED, CLIENT_UPDATED, CLIENT_DELETED,
    "user_added", "user_disabled", "user_enabled", "password_changed", "consent_granted",
    "consent_revoked", "consent_denied", "sign_in", "sign_in_failed", "sign_in_locked",
    "signed_out", "code_reused", "refresh_reused", "roles_changed", "decision",
    "approval_requested", "approval_refused", "approval_granted", "approval_denied",
    "approval_expired",
})  # fmt: skip

_FIELDS: Final = (
    "chain", "seq", "at", "event", "client_id", "subject", "actors", "task", "jti",
    "parent_jti", "jkt", "reason", "details",
)  # fmt: skip
#: Fields added by migration 0007, hashed after the others (see :func:`hash_tail`).
_FIELDS_0007: Final = ("at_us", "kid")


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
    kid: str | None = None  # a signing key's ``kid`` (key rotation), never a holder's ``jkt``


# Built once: every issued token appends an entry (json.dumps with options would build a new
# encoder on every call).
_TAIL_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DETAILS_ENCODER = json.JSONEncoder(sort_keys=True)
_LOCK_HEAD = (
    select(audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.chain == bindparam("chain"))
    .with_for_update()
)
_INSERT = insert(audit_log)  # PostgreSQL: the column default numbers ``id`` (migration 0007)
# SQLite runs one writing transaction at a time (BEGIN IMMEDIATE, storage/database.py), so the
# next number is the largest so far plus one; the unique index on ``id`` backs that up.
_INSERT_NUMBERED = _INSERT.values(
    id=select(func.coalesce(func.max(audit_log.c.id), 0) + 1).scalar_subquery()
)
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

    Entries written since migration 0007 carry ``at_us`` (always) and ``kid``, hashed after the
    original fields; entries written before have neither and keep the text they were hashed
    over, so they still verify.  Setting either field on an old entry, or clearing ``at_us`` on
    a new one, changes the text and breaks the hash.  ``id`` (the order across chains) is not
    hashed: the database assigns it as the row is inserted, after the hash is computed on the
    batched path, and it only orders the listing — every entry's contents and time stay
    covered by its own chain.
    """
    values = [row[name] for name in _FIELDS[2:]]
    extra = [row.get(name) for name in _FIELDS_0007]
    if extra != [None, None]:
        values += extra
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


def micros(now: int) -> int:
    """Microseconds for an entry written at ``now`` (whole seconds, the decision's clock).

    The fraction comes from the wall clock, kept within ``now``'s second, so ``at`` and
    ``at_us`` always agree — also under a test's shifted clock, where it is ``.000000`` or
    ``.999999``.  The order of entries is ``id``'s, not this time's.
    """
    start = now * 1_000_000
    return min(max(time.time_ns() // 1000, start), start + 999_999)


def entry(event: AuditEvent, now: int) -> dict[str, Any]:
    """The stored fields of ``event``, on a chain picked at random (load spreading)."""
    return {
        "chain": int(random.random() * AUDIT_CHAINS),  # noqa: S311 - load spreading only
        "at": now,
        "at_us": micros(now),
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
        "kid": event.kid,
    }


async def append(conn: AsyncConnection, event: AuditEvent, now: int) -> None:
    """Add ``event`` to one of the chains, inside the caller's transaction."""
    row = entry(event, now)
    head = (await conn.execute(_LOCK_HEAD, {"chain": row["chain"]})).one()
    row["seq"] = head.seq + 1
    digest = _digest(head.hash, row)
    insert_ = _INSERT_NUMBERED if conn.dialect.name == "sqlite" else _INSERT
    await conn.execute(insert_, {**row, "prev_hash": head.hash, "hash": digest})
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
    events: Sequence[str] = (),
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries matching every given filter, listed oldest first (by
    ``id``, the order they were written in).  ``actor`` matches the acting client or any actor
    in the chain; ``events``, if given, keeps entries of those kinds."""
    stmt = select(audit_log)
    if events:
        stmt = stmt.where(audit_log.c.event.in_(list(events)))
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
    stmt = stmt.order_by(audit_log.c.id.desc()).limit(limit)
    result = []
    for row in await conn.execute(stmt):
        entry = dict(row._mapping)
        entry["actors"] = entry["actors"].split(" ") if entry["actors"] else []
        entry["details"] = json.loads(entry["details"]) if entry["details"] else {}
        result.append(entry)
    result.reverse()
    return result


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
