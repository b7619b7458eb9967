"""OpenID CIBA Core 1.0 §10, poll mode: the agent polls with its ``auth_req_id`` until its
person answers (``grant_type=urn:openid:params:grant-type:ciba``).

- Only the client that asked may redeem (another agent gets ``invalid_grant``), only once.
- Polling faster than ``interval`` is ``slow_down``, and the interval grows by 5 seconds for
  this and every later poll (§11); a request nobody answered expires (``expired_token``); a
  denial is ``access_denied``; while waiting, ``authorization_pending``.
- An approval yields one access token for exactly the approved ``authorization_details``,
  DPoP-bound to the key of the token that asked (the proof must be signed by it), carrying the
  chain back to the person and an ``approval`` claim (who approved, when, which request);
  short-lived (``approvals.token_lifetime``, never beyond its parent), and under the parent in
  the ledger, so revoking the parent (or the task) revokes it too.  With ``openid``, an ID
  token names the person (§10.1.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from deputize.keys import sign
from deputize.keys.chain import Chain
from deputize.keys.compare import same_text
from deputize.server.approvals.answers import expire
from deputize.server.errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    SlowDownError,
)
from deputize.server.grants import TokenRequest
from deputize.server.grants.issuance import ID_TOKEN_TYP
from deputize.server.settings import CIBA
from deputize.server.storage import approvals, tokens
from deputize.server.storage.tokens import DELEGATION
from deputize.server.tokens.minting import mint_access_token

#: CIBA §11: after ``slow_down`` the interval grows "by at least 5 seconds".
SLOW_DOWN_STEP = 5


class CibaGrant:
    grant_type: ClassVar[str] = CIBA
    repeatable: ClassVar[frozenset[str]] = frozenset()
    batched: ClassVar[bool] = False

    async def handle(self, request: TokenRequest) -> Mapping[str, Any]:
        client, conn, now = request.client, request.conn, request.now
        found = await approvals.by_auth_req_id(conn, request.form.require("auth_req_id"))
        if found is None or found.client_id != client.client_id:
            raise InvalidGrantError("the auth_req_id is invalid")
        request.refusal.subject, request.refusal.actors = found.sub, found.actors
        request.refusal.task = found.task
        state = found.state(now)
        if state == approvals.EXPIRED:
            await expire(conn, found, now)
            raise ExpiredTokenError("the person did not answer in time; ask again")
        if state == approvals.DENIED:
            raise AccessDeniedError("the person denied the request")
        if state == approvals.REDEEMED:
            raise InvalidGrantError("this auth_req_id was already redeemed")
        if state == approvals.PENDING:
            if found.last_polled_at is not None and now - found.last_polled_at < found.interval:
                await approvals.polled(conn, found.id, now, found.interval + SLOW_DOWN_STEP)
                raise SlowDownError(f"poll at most every {found.interval + SLOW_DOWN_STEP} s")
            await approvals.polled(conn, found.id, now, found.interval)
            raise AuthorizationPendingError("the person has not answered yet")
        # Approved: the token goes to the key that asked, under a parent still alive.
        proof = request.proof
        if proof is None or not same_text(proof.jkt, found.jkt):
            raise InvalidRequestError(
                "send a DPoP proof signed by the key of the login_hint_token's holder"
            )
        parent = await tokens.get(conn, found.parent_jti, lock=True)
        if parent is None or parent.revoked_at is not None or parent.expires_at <= now:
            raise InvalidGrantError("the token the request was made with is revoked or expired")
        if not await approvals.move(conn, found.id, approvals.APPROVED, approvals.REDEEMED):
            raise InvalidGrantError("this auth_req_id was already redeemed")
        return await _issue(request, found, parent.expires_at)


async def _issue(
    request: TokenRequest, found: approvals.ApprovalRequest, parent_expires_at: int
) -> dict[str, Any]:
    ctx, now = request.ctx, request.now
    settings = ctx.settings
    expires_at = min(now + settings.approvals.token_lifetime, parent_expires_at)
    approval = {"id": found.id, "by": found.decided_by, "at": found.decided_at}
    minted = await mint_access_token(
        request.store, ctx.keyring, issuer=settings.issuer,
        chain=Chain(found.sub, found.actors), client_id=request.client.client_id,
        audience=list(found.audience) or [settings.issuer], scopes=list(found.scopes), now=now,
        expires_at=expires_at, jkt=found.jkt, kind=DELEGATION, parent_jti=found.parent_jti,
        task=found.task, status=ctx.status_allocator,
        extra_claims={"authorization_details": found.authorization_details, "approval": approval},
    )  # fmt: skip
    response: dict[str, Any] = {
        "access_token": minted.token,
        "token_type": "DPoP",
        "expires_in": expires_at - now,
        "authorization_details": found.authorization_details,  # RFC 9396 §7
    }
    if found.scopes:
        response["scope"] = " ".join(found.scopes)
    id_claims = {  # CIBA §10.1.1: who the agent acts for, approved when
        "iss": settings.issuer, "sub": found.sub, "aud": request.client.client_id,
        "azp": request.client.client_id, "iat": now, "exp": now + settings.id_token_lifetime,
        "auth_time": found.decided_at or now,
    }  # fmt: skip
    response["id_token"] = sign(id_claims, ctx.keyring.view.active, typ=ID_TOKEN_TYP)
    return response
