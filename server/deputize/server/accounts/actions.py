"""Account actions shared by the pages and the CLI, each with its audit entry: adding and
disabling users, changing passwords, and revoking consent together with what it allowed.

Revoking is deny-first: the consent (or user) is marked first, in the same transaction as the
token revocation, so an exchange that relied on it either committed before (and its tokens
are found and revoked here) or sees the mark and is refused.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.storage import audit, consents, refresh, sessions, tokens, users
from deputize.server.storage.tables import issued_tokens
from deputize.server.tokens.revocation import revoke as revoke_tokens

USER_ADDED: Final = "user_added"
USER_DISABLED: Final = "user_disabled"
USER_ENABLED: Final = "user_enabled"
PASSWORD_CHANGED: Final = "password_changed"
CONSENT_GRANTED: Final = "consent_granted"
CONSENT_REVOKED: Final = "consent_revoked"
ROLES_CHANGED: Final = "roles_changed"


async def add_user(conn: AsyncConnection, user: users.User, now: int, *, by: str) -> bool:
    if not await users.add(conn, user):
        return False
    await audit.append(
        conn, audit.AuditEvent(event=USER_ADDED, subject=user.sub, details={"by": by}), now
    )
    return True


async def set_password(
    conn: AsyncConnection, sub: str, password_hash: str, now: int, *, by: str
) -> bool:
    """New password; every session of the user ends (whoever knew the old one is signed out)."""
    if not await users.set_password(conn, sub, password_hash, now):
        return False
    ended = await sessions.end_all(conn, sub)
    await audit.append(
        conn,
        audit.AuditEvent(
            event=PASSWORD_CHANGED, subject=sub, details={"by": by, "sessions_ended": ended}
        ),
        now,
    )
    return True


async def disable_user(conn: AsyncConnection, sub: str, now: int, *, by: str) -> int | None:
    """Disable the user: sessions end, refresh tokens and every token acting for them are
    revoked.  Returns how many tokens were revoked (None: no such user)."""
    if not await users.set_disabled(conn, sub, now):
        return None
    await sessions.end_all(conn, sub)
    for family, _ in await refresh.families(conn, sub=sub):
        await refresh.revoke_family(conn, family, now)
    count = (await revoke_tokens(conn, now, by=by, subject=sub)).live
    await audit.append(
        conn,
        audit.AuditEvent(event=USER_DISABLED, subject=sub, details={"by": by, "revoked": count}),
        now,
    )
    return count


async def set_roles(
    conn: AsyncConnection, sub: str, roles: tuple[str, ...], now: int, *, by: str
) -> int | None:
    """Give the user exactly ``roles``.  Taking a role away revokes every token acting for the
    user (deny-first, in this transaction): those tokens were issued under the old roles, and
    the policy must not keep honouring what it no longer grants.  Returns how many tokens were
    revoked (None: no such user)."""
    user = await users.get(conn, sub)
    if user is None or not await users.set_roles(conn, sub, roles):
        return None
    removed = sorted(set(user.roles) - set(roles))
    count = (await revoke_tokens(conn, now, by=by, subject=sub)).live if removed else 0
    await audit.append(
        conn,
        audit.AuditEvent(
            event=ROLES_CHANGED,
            subject=sub,
            details={"by": by, "roles": list(roles), "removed": removed, "revoked": count},
        ),
        now,
    )
    return count


async def enable_user(conn: AsyncConnection, sub: str, now: int, *, by: str) -> bool:
    if not await users.set_disabled(conn, sub, None):
        return False
    await audit.append(
        conn, audit.AuditEvent(event=USER_ENABLED, subject=sub, details={"by": by}), now
    )
    return True


async def revoke_consent(
    conn: AsyncConnection, consent_id: str, now: int, *, by: str, sub: str | None = None
) -> int | None:
    """Revoke a consent and every live token it allowed: the client's tokens for the user, its
    refresh tokens, and the tokens of each agent it authorised — with everything delegated
    from them.  ``sub`` restricts it to that user's consents (the account page).

    Returns the number of tokens revoked; None if there is no such live consent.
    """
    consent = await consents.get(conn, consent_id)
    if consent is None or consent.revoked_at is not None or sub not in (None, consent.sub):
        return None
    if await consents.mark_revoked(conn, consent_id, now) is None:
        return None
    holders = [consent.client_id, *consent.agents]
    for family, _ in await refresh.families(conn, sub=consent.sub, client_ids=[consent.client_id]):
        await refresh.revoke_family(conn, family, now)
    # Runs after the consent row is marked: an exchange holding it share-locked has committed.
    jtis = (
        await conn.execute(
            select(issued_tokens.c.jti).where(
                issued_tokens.c.subject == consent.sub,
                issued_tokens.c.client_id.in_(holders),
                issued_tokens.c.revoked_at.is_(None),
                issued_tokens.c.expires_at > now,
            )
        )
    ).scalars()
    count = 0
    for jti in list(jtis):
        count += (await tokens.revoke(conn, now, jti=jti)).live
    await audit.append(
        conn,
        audit.AuditEvent(
            event=CONSENT_REVOKED,
            client_id=consent.client_id,
            subject=consent.sub,
            actors=consent.agents,
            details={"by": by, "consent": consent.id, "revoked": count},
        ),
        now,
    )
    return count
