"""The ledger of issued tokens: what introspection, revocation and delegation consult."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage.tables import issued_tokens

CLIENT, DELEGATION, HANDOFF = "client", "delegation", "handoff"
#: A signed-in person's own token (authorization code flow), and the untokened ledger row that
#: every access token of one sign-in hangs under, so one revocation reaches them all.
USER, GRANT = "user", "grant"


@dataclass(slots=True)  # not frozen: built for every token request, 4x faster
class TokenRecord:
    jti: str
    client_id: str
    subject: str
    issued_at: int
    expires_at: int
    jkt: str | None = None
    parent_jti: str | None = None
    revoked_at: int | None = None
    kind: str = CLIENT
    task: str | None = None
    actor: str | None = None
    redeemed_at: int | None = None
    status_idx: int | None = None

    def row(self) -> dict[str, object]:
        """The ledger row (``dataclasses.asdict`` deep-copies every field: slow on a hot path)."""
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS = tuple(f.name for f in fields(TokenRecord))

# Statements built once; the hot path only binds parameters.
_INSERT = insert(issued_tokens)
_GET = select(issued_tokens).where(issued_tokens.c.jti == bindparam("jti"))
_GET_SHARED = _GET.with_for_update(read=True)


_MARKED = (issued_tokens.c.kind, issued_tokens.c.expires_at, issued_tokens.c.redeemed_at)


@dataclass(frozen=True, slots=True)
class Revoked:
    """What one revocation changed, for the person who asked and the audit entry.

    ``live``: tokens that could still be used a moment before (unexpired, unrevoked, not a
    spent hand-off).  ``spent_handoffs``: unexpired hand-off tokens already redeemed, closed
    with them (unusable already; the tokens minted from them hang under them and were
    revoked too).  ``rows``: every ledger row marked, expired ones and sign-in ledger rows
    (``GRANT``, no token of their own) included.
    """

    live: int = 0
    spent_handoffs: int = 0
    rows: int = 0

    @classmethod
    def of(cls, marked: Sequence[Row[Any]], now: int) -> Revoked:
        live = spent = 0
        for row in marked:
            if row.expires_at <= now or row.kind == GRANT:
                continue
            if row.kind == HANDOFF and row.redeemed_at is not None:
                spent += 1
            else:
                live += 1
        return cls(live=live, spent_handoffs=spent, rows=len(marked))


async def record(conn: AsyncConnection, token: TokenRecord) -> None:
    await conn.execute(_INSERT, token.row())


async def get(conn: AsyncConnection, jti: str, *, lock: bool = False) -> TokenRecord | None:
    """The ledger row for ``jti``.  ``lock`` takes a share lock (PostgreSQL) so a revocation
    cannot commit between this read and the caller's commit of a child token."""
    row = (await conn.execute(_GET_SHARED if lock else _GET, {"jti": jti})).first()
    return None if row is None else TokenRecord(**row._mapping)


async def redeem(conn: AsyncConnection, jti: str, now: int) -> bool:
    """Mark a single-use token as used; False if it was already used or revoked."""
    result = await conn.execute(
        update(issued_tokens)
        .where(
            issued_tokens.c.jti == jti,
            issued_tokens.c.redeemed_at.is_(None),
            issued_tokens.c.revoked_at.is_(None),
        )
        .values(redeemed_at=now)
    )
    return result.rowcount == 1


async def revoke(
    conn: AsyncConnection,
    now: int,
    *,
    jti: str | None = None,
    task: str | None = None,
    client_id: str | None = None,
    subject: str | None = None,
) -> Revoked:
    """Revoke the tokens matching one criterion and every token descended from them.

    Two statements, on purpose: the first marks (and on PostgreSQL locks) the matching rows,
    waiting for any exchange that holds a share lock on them to commit; the second then sees
    the children those exchanges created and revokes them too.  Returns what changed state,
    counted from the rows the statements marked (:class:`Revoked`).
    """
    conditions = [
        column == value
        for column, value in (
            (issued_tokens.c.jti, jti),
            (issued_tokens.c.task, task),
            (issued_tokens.c.client_id, client_id),
            (issued_tokens.c.subject, subject),
        )
        if value is not None
    ]
    if len(conditions) != 1:
        raise ValueError("revoke by exactly one of jti, task, client_id, subject")
    (condition,) = conditions
    first = await conn.execute(
        update(issued_tokens)
        .where(condition, issued_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(*_MARKED)
    )
    second = await conn.execute(
        update(issued_tokens)
        .where(
            issued_tokens.c.jti.in_(_descendants(condition)), issued_tokens.c.revoked_at.is_(None)
        )
        .values(revoked_at=now)
        .returning(*_MARKED)
    )
    return Revoked.of([*first.all(), *second.all()], now)


def _descendants(roots: ColumnElement[bool]) -> Select[tuple[str]]:
    # nesting=True keeps the WITH inside the subquery: a statement that starts with WITH
    # reports no row count through Python's sqlite3.
    # UNION, not UNION ALL: a row already found is not followed again, so even a ledger whose
    # parent links were edited into a cycle ends the walk.
    tree = select(issued_tokens.c.jti).where(roots).cte("tree", recursive=True, nesting=True)
    tree = tree.union(select(issued_tokens.c.jti).where(issued_tokens.c.parent_jti == tree.c.jti))
    return select(tree.c.jti)


async def hold_lineage(conn: AsyncConnection, jti: str) -> bool:
    """Share-lock the row of ``jti`` and of every token above it until commit; False if any of
    them is revoked or being revoked.  A token exchange calls it last, just before minting.

    A revocation marks the rows it matches and then, in a second statement, everything below
    them; a child minted after that statement began would escape it.  Holding the whole lineage
    closes the gap: a revocation of any ancestor either waits for our commit (and then sees the
    child) or has locked that ancestor first, and then we refuse.  The locks skip rather than
    wait (SKIP LOCKED), so an exchange never waits while holding ledger locks a revocation
    needs: no deadlock, whatever order a revocation by task or user locks rows in.  (SQLite
    runs one writing transaction at a time: there the reads alone suffice.)
    """
    up = (
        select(issued_tokens.c.jti, issued_tokens.c.parent_jti)
        .where(issued_tokens.c.jti == jti)
        .cte("lineage", recursive=True)
    )
    # UNION, not UNION ALL: a cycle of parent links (an edited ledger) ends the walk.
    up = up.union(
        select(issued_tokens.c.jti, issued_tokens.c.parent_jti).where(
            issued_tokens.c.jti == up.c.parent_jti
        )
    )
    rows = (await conn.execute(select(up.c.jti, up.c.parent_jti))).all()
    lineage = [row.jti for row in rows]
    # The walk must end at a token minted without a parent; an ancestor that is missing, or a
    # cycle, fails closed, as the PostgreSQL hot path's walk does.
    if not any(row.parent_jti is None for row in rows):
        return False
    held = (
        await conn.execute(
            select(issued_tokens.c.revoked_at)
            .where(issued_tokens.c.jti.in_(lineage))
            .with_for_update(read=True, skip_locked=True)
        )
    ).all()
    return len(held) == len(lineage) and all(r.revoked_at is None for r in held)


async def purge_expired(conn: AsyncConnection, before: int) -> int:
    """Delete rows that expired before ``before`` and have no row below them left.

    A token may outlive its parent (a redeemed hand-off lives as long as the token it was made
    from), and revocation reaches descendants through the parent links: deleting an expired
    parent whose children live would cut them off from their ancestors' revocation.  So a row
    goes only once its children have gone; a chain is purged from the bottom up, a level per run.
    """
    child = issued_tokens.alias("child")
    has_children = select(child.c.jti).where(child.c.parent_jti == issued_tokens.c.jti).exists()
    result = await conn.execute(
        delete(issued_tokens).where(issued_tokens.c.expires_at < before, ~has_children)
    )
    return result.rowcount


async def live_for_subject(conn: AsyncConnection, subject: str, now: int) -> list[TokenRecord]:
    """Every unrevoked, unexpired ledger row of ``subject``, in one query (indexed by
    ``ix_issued_tokens_subject``)."""
    c = issued_tokens.c
    rows = await conn.execute(
        select(issued_tokens)
        .where(c.subject == subject, c.revoked_at.is_(None), c.expires_at > now)
        .order_by(c.issued_at, c.jti)
    )
    return [TokenRecord(**{name: row._mapping[name] for name in _COLUMNS}) for row in rows]
