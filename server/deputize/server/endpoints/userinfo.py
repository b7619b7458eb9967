"""OpenID Connect UserInfo (Core §5.3), for Bearer and DPoP-bound access tokens alike.

A token bound to a key (``cnf.jkt``) must come as ``Authorization: DPoP`` with a proof for this
request by that key, carrying the token's hash (RFC 9449 §7.1); a bound token sent as Bearer is
refused, so a stolen bound token is useless here too.  The token must be live in the ledger,
carry ``openid``, and name a user who is still enabled.  Claims follow the token's scopes:
``profile`` adds ``name`` and ``preferred_username``, ``email`` adds ``email``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys import InvalidProofError, JoseError, verify_proof
from deputize.keys.dpop import ALGORITHMS as DPOP_ALGORITHMS
from deputize.keys.dpop import bound_key
from deputize.keys.errors import error_description
from deputize.server.context import ServerContext
from deputize.server.http.responses import json_response
from deputize.server.storage import replay, tokens, users
from deputize.server.tokens.own_tokens import verify_own_token

_ALGS = " ".join(DPOP_ALGORITHMS)


def _challenge(scheme: str, error: str, description: str, *, status: int = 401) -> Response:
    # The description may quote a proof's header: in a quoted-string a '"' would end it, and a
    # non-Latin-1 character cannot be sent at all (RFC 6750 §3).
    description = error_description(description)
    value = f'{scheme} error="{error}", error_description="{description}"'
    if scheme == "DPoP":
        value += f', algs="{_ALGS}"'
    return json_response(
        {"error": error, "error_description": description},
        status=status,
        headers={"WWW-Authenticate": value},
    )


async def userinfo(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    settings = ctx.settings
    now = int(ctx.clock())
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    scheme = scheme.lower()
    token = token.strip()
    if scheme not in ("bearer", "dpop") or not token:
        # RFC 6750 §3.1: no credentials, no error code, just the challenge.
        return json_response(
            {"error": "invalid_token", "error_description": "send an access token"},
            status=401,
            headers={"WWW-Authenticate": f'Bearer, DPoP algs="{_ALGS}"'},
        )
    claims = verify_own_token(ctx, token, now=now)
    shown = "DPoP" if scheme == "dpop" else "Bearer"
    if claims is None:
        return _challenge(shown, "invalid_token", "the access token is invalid or expired")
    try:
        jkt = bound_key(claims)
    except JoseError:
        return _challenge(shown, "invalid_token", "the access token is invalid or expired")
    proofs = request.headers.getlist("dpop")
    if jkt is not None:
        if scheme != "dpop":
            return _challenge("DPoP", "invalid_token", "this token is DPoP-bound: use DPoP")
        if len(proofs) != 1:
            return _challenge("DPoP", "invalid_dpop_proof", "send exactly one DPoP proof")
        try:
            proof = verify_proof(
                proofs[0], method=request.method, url=settings.endpoint("/userinfo"), now=now,
                max_age=settings.dpop_proof_max_age, access_token=token, jkt=jkt,
            )  # fmt: skip
        except InvalidProofError as exc:
            return _challenge("DPoP", "invalid_dpop_proof", exc.description)
    elif scheme == "dpop":
        return _challenge("DPoP", "invalid_token", "this token is not DPoP-bound: use Bearer")
    async with ctx.db.begin() as conn:
        if jkt is not None and not await replay.remember(
            conn, f"dpop:{proof.jkt}:{proof.jti}", proof.iat + settings.dpop_proof_max_age + 1
        ):
            return _challenge("DPoP", "invalid_dpop_proof", "DPoP proof has already been used")
        record = await tokens.get(conn, claims["jti"])
        user = await users.get(conn, str(claims.get("sub")))
    scopes = str(claims.get("scope", "")).split()
    if record is None or record.revoked_at is not None:
        return _challenge(shown, "invalid_token", "the access token has been revoked")
    if "openid" not in scopes:
        return _challenge(
            shown, "insufficient_scope", "the token lacks the openid scope", status=403
        )
    if user is None or not user.active:
        return _challenge(shown, "invalid_token", "the user is unknown or disabled")
    body: dict[str, Any] = {"sub": user.sub}
    if "profile" in scopes:
        body["preferred_username"] = user.sub
        if user.name:
            body["name"] = user.name
    if "email" in scopes and user.email:
        body["email"] = user.email
    return json_response(body)
