"""The person's answer to an approval request — or an approver's, or an operator's.

Only the person the chain acts for may answer from their account page, or a person holding
one of ``approvals.approver_roles``; operators answer with ``deputize approvals`` (audited as
the operator).  A request is answered once, before it expires; every answer, and every
expiry, is in the audit trail.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.settings import Settings
from deputize.server.storage import approvals, audit, users

APPROVAL_GRANTED: Final = "approval_granted"
APPROVAL_DENIED: Final = "approval_denied"
APPROVAL_EXPIRED: Final = "approval_expired"


class AnswerError(Exception):
    """The answer cannot be recorded; the message says why, for a page or the command line."""


async def may_answer(conn: AsyncConnection, settings: Settings, sub: str, asker: str) -> bool:
    """Whether person ``sub`` may answer a request acting for ``asker``."""
    if sub == asker:
        return True
    roles = set(settings.approvals.approver_roles)
    if not roles:
        return False
    user = await users.get(conn, sub)
    return user is not None and user.active and bool(roles & set(user.roles))


async def answer(
    conn: AsyncConnection,
    request_id: str,
    *,
    approve: bool,
    by: str,
    now: int,
    operator: bool = False,
) -> approvals.ApprovalRequest:
    """Approve or deny a pending request; :class:`AnswerError` if it is not pending."""
    found = await approvals.get(conn, request_id)
    if found is None:
        raise AnswerError(f"no approval request {request_id!r}")
    state = found.state(now)
    if state != approvals.PENDING:
        raise AnswerError(f"approval request {request_id} is {state}, not pending")
    if not await approvals.decide(conn, request_id, approve=approve, by=by, now=now):
        raise AnswerError(f"approval request {request_id} was answered or expired meanwhile")
    name = APPROVAL_GRANTED if approve else APPROVAL_DENIED
    await audit.append(
        conn,
        audit.AuditEvent(
            event=name, client_id=found.client_id,
            subject=found.sub, actors=found.actors, task=found.task,
            parent_jti=found.parent_jti,
            details={"approval": found.id, "by": by, "as": "operator" if operator else "person"},
        ),
        now,
    )  # fmt: skip
    return found


async def expire(conn: AsyncConnection, found: approvals.ApprovalRequest, now: int) -> None:
    """Record that a pending request expired unanswered (once)."""
    if await approvals.move(conn, found.id, approvals.PENDING, approvals.EXPIRED):
        await audit.append(
            conn,
            audit.AuditEvent(
                event=APPROVAL_EXPIRED, client_id=found.client_id, subject=found.sub,
                actors=found.actors, task=found.task, parent_jti=found.parent_jti,
                details={"approval": found.id},
            ),
            now,
        )  # fmt: skip


async def expire_all(conn: AsyncConnection, now: int) -> None:
    """Expire (and audit) every request past its expiry that nobody answered."""
    for found in await approvals.overdue(conn, now):
        await expire(conn, found, now)
