"""RFC 6749 §6 refresh, with rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).

Every use returns a new refresh token and retires the old one.  Presenting a retired token
again means two parties hold it: the whole family is revoked, with every access token issued
under it.  A public client's refresh token is bound to its DPoP key (RFC 9449 §5): the proof
must be signed by that key.  Scope may only narrow (§6), and so may ``resource`` (RFC 8707
§2.2) and ``authorization_details`` (RFC 9396 §6.2): for the access token only, the refresh
token keeps the grant's resources and details.  The consent
behind it must be live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from deputize.keys.compare import same_text
from deputize.server.delegation.signin_details import narrow
from deputize.server.errors import InvalidGrantError, InvalidScopeError
from deputize.server.grants import TokenRequest
from deputize.server.grants.authorization_code import revoke_grant
from deputize.server.grants.issuance import Grant, issue, still_authorised
from deputize.server.settings import REFRESH_TOKEN
from deputize.server.storage import audit, refresh, tokens
from deputize.server.tokens.scopes import narrow_audience, parse_scope

REFRESH_REUSED: Final = "refresh_reused"


class RefreshTokenGrant:
    grant_type: ClassVar[str] = REFRESH_TOKEN
    #: RFC 8707 §2.2: ``resource`` narrows this access token only; the refresh token keeps all.
    repeatable: ClassVar[frozenset[str]] = frozenset({"resource"})
    batched: ClassVar[bool] = False  # sessions, codes and refresh families: the ordinary path

    async def handle(self, request: TokenRequest) -> Mapping[str, Any]:
        form, client, now, conn = request.form, request.client, request.now, request.conn
        presented = form.require("refresh_token")
        row = await refresh.find(conn, presented)
        if row is None or row.client_id != client.client_id:
            raise InvalidGrantError("the refresh token is invalid")
        request.refusal.subject = row.sub
        if row.revoked_at is not None:
            raise InvalidGrantError("the refresh token has been revoked")
        if row.rotated_at is not None:
            count = await revoke_grant(request, row.grant_jti, why="refresh_reuse")
            await audit.append(
                conn,
                audit.AuditEvent(
                    event=REFRESH_REUSED, client_id=client.client_id, subject=row.sub,
                    parent_jti=row.grant_jti, details={"revoked": count, "family": row.family},
                ),
                now,
            )  # fmt: skip
            raise InvalidGrantError("the refresh token was already used; its family is revoked")
        if row.expires_at <= now or row.family_expires_at <= now:
            raise InvalidGrantError("the refresh token has expired")
        if row.jkt is not None and (
            request.proof is None or not same_text(request.proof.jkt, row.jkt)
        ):
            raise InvalidGrantError("the refresh token is bound to another DPoP key")
        consent = await still_authorised(conn, row.consent_id, row.sub, now)
        if not await tokens.hold_lineage(conn, row.grant_jti):
            raise InvalidGrantError("the sign-in behind this refresh token was revoked")
        requested = parse_scope(form.get("scope"))
        scopes = list(row.scopes) if requested is None else requested
        wider = [s for s in scopes if s not in row.scopes or s not in consent.scopes]
        if wider:
            raise InvalidScopeError("scope exceeds the original grant: " + " ".join(wider))
        # Before rotation: a refusal commits, and must not cost the client its refresh token.
        settings = request.ctx.settings
        audience = narrow_audience(form, row.resources, client, settings)
        policy = settings.policy.policy if settings.policy is not None else None
        details = narrow(form.get("authorization_details"), row.authorization_details, policy)
        if not await refresh.rotate(conn, presented, now):
            raise InvalidGrantError("the refresh token was already used")
        grant = Grant(
            sub=row.sub,
            scopes=row.scopes,
            resources=row.resources,
            auth_time=row.auth_time,
            consent_id=row.consent_id,
            grant_jti=row.grant_jti,
            family=row.family,
            family_expires_at=row.family_expires_at,
            details=row.authorization_details,
        )
        return await issue(request, grant, scopes, audience, with_refresh=True, details=details)
