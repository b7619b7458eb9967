"""Revocation with its audit entry: one function for the endpoint and the CLI alike.

Revoking a token revokes every token delegated from it; revoking a task, a client or a user
revokes theirs and everything delegated from those (``storage/tokens.py``).  Introspection
and further exchanges see it as soon as the transaction commits.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage import audit, tokens


async def revoke(
    conn: AsyncConnection,
    now: int,
    *,
    by: str,
    jti: str | None = None,
    task: str | None = None,
    client_id: str | None = None,
    subject: str | None = None,
) -> tokens.Revoked:
    """Revoke by one criterion; ``by`` names who asked (a client ID, or ``cli``).  The entry
    counts the live tokens revoked and the spent hand-offs closed with them."""
    done = await tokens.revoke(conn, now, jti=jti, task=task, client_id=client_id, subject=subject)
    criterion = {
        name: value
        for name, value in (("jti", jti), ("task", task), ("client", client_id), ("user", subject))
        if value is not None
    }
    await audit.append(
        conn,
        audit.AuditEvent(
            event=audit.TOKEN_REVOKED,
            client_id=client_id,
            subject=subject,
            task=task,
            jti=jti,
            details={
                "by": by,
                "revoked": done.live,
                "handoffs_closed": done.spent_handoffs,
                **criterion,
            },
        ),
        now,
    )
    return done
