"""RFC 6749 §4.1.3 authorization code grant, as OAuth 2.1 tightens it.

- The code is single-use.  Presenting a used code revokes every token issued from it
  (RFC 6749 §4.1.2, RFC 9700 §4.5): whoever holds the copy, the tokens are dead.
- ``redirect_uri`` must equal the one in the authorization request; the client must be the
  one the code was issued to.
- PKCE (RFC 7636 §4.6): SHA-256 of ``code_verifier`` must equal the ``code_challenge``.
- A code bound with ``dpop_jkt`` is redeemed only with a DPoP proof by that key (RFC 9449 §10).
- The consent it was issued under must still be live, and the user still enabled.
- ``resource`` (RFC 8707 §2.2) may narrow the access token's audience to some of the
  authorization request's resources, never widen it (:func:`narrow_audience`), and
  ``authorization_details`` (RFC 9396 §6.1) the details the person allowed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from deputize.keys.compare import same_text
from deputize.server.delegation.signin_details import narrow
from deputize.server.errors import InvalidGrantError
from deputize.server.grants import TokenRequest
from deputize.server.grants.issuance import Grant, issue, start_grant, still_authorised
from deputize.server.settings import AUTHORIZATION_CODE
from deputize.server.storage import audit, codes, refresh
from deputize.server.tokens.revocation import revoke as revoke_tokens
from deputize.server.tokens.scopes import narrow_audience

CODE_REUSED: Final = "code_reused"
_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def revoke_grant(request: TokenRequest, grant_jti: str, *, why: str) -> int:
    """Revoke a sign-in's refresh family and every token under its ledger row."""
    count = 0
    for_grant = await refresh.revoke_grant(request.conn, grant_jti, request.now)
    count += (await revoke_tokens(request.conn, request.now, by=why, jti=grant_jti)).live
    return count + for_grant


class AuthorizationCodeGrant:
    grant_type: ClassVar[str] = AUTHORIZATION_CODE
    #: RFC 8707 §2.2: ``resource`` may be sent again, to narrow the token's audience.
    repeatable: ClassVar[frozenset[str]] = frozenset({"resource"})
    batched: ClassVar[bool] = False  # sessions, codes and refresh families: the ordinary path

    async def handle(self, request: TokenRequest) -> Mapping[str, Any]:
        form, client, now, conn = request.form, request.client, request.now, request.conn
        policy = request.ctx.settings.policy.policy if request.ctx.settings.policy else None
        code = form.require("code")
        verifier = form.require("code_verifier")
        redirect_uri = form.require("redirect_uri")
        row = await codes.take(conn, code)
        if row is None or row.client_id != client.client_id:
            raise InvalidGrantError("the authorization code is invalid")
        request.refusal.subject = row.sub
        if row.used_at is not None:
            if row.grant_jti is not None:
                count = await revoke_grant(request, row.grant_jti, why="code_reuse")
                await audit.append(
                    conn,
                    audit.AuditEvent(
                        event=CODE_REUSED, client_id=client.client_id, subject=row.sub,
                        parent_jti=row.grant_jti, details={"revoked": count},
                    ),
                    now,
                )  # fmt: skip
            raise InvalidGrantError("the authorization code was already used")
        if row.expires_at <= now:
            raise InvalidGrantError("the authorization code has expired")
        if not same_text(redirect_uri, row.redirect_uri):
            raise InvalidGrantError("redirect_uri differs from the authorization request's")
        if not _VERIFIER.fullmatch(verifier) or not same_text(s256(verifier), row.code_challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge (PKCE)")
        if row.dpop_jkt is not None and (
            request.proof is None or not same_text(request.proof.jkt, row.dpop_jkt)
        ):
            raise InvalidGrantError("the code is bound to another DPoP key (dpop_jkt)")
        await still_authorised(conn, row.consent_id, row.sub, now)
        # Before the code is spent: a refusal commits, and a mistyped resource must not burn it.
        audience = narrow_audience(form, row.resources, client, request.ctx.settings)
        details = narrow(form.get("authorization_details"), row.authorization_details, policy)
        grant_jti, family_expires_at = await start_grant(request, row.sub)
        if not await codes.mark_used(conn, code, now, grant_jti):
            raise InvalidGrantError("the authorization code was already used")
        grant = Grant(
            sub=row.sub,
            scopes=row.scopes,
            resources=row.resources,
            auth_time=row.auth_time,
            consent_id=row.consent_id,
            grant_jti=grant_jti,
            family=secrets.token_urlsafe(24),
            family_expires_at=family_expires_at,
            nonce=row.nonce,
            details=row.authorization_details,
        )
        return await issue(
            request, grant, list(row.scopes), audience, with_refresh=True, details=details
        )
