"""Token introspection (RFC 7662).

The caller authenticates as a client.  The answer is ``{"active": false}`` for anything
Deputize cannot vouch for — malformed, not ours, expired, revoked, unknown to the ledger — and
also for tokens the caller has no business seeing: a client may introspect tokens issued to
it or naming it as audience, or any token if it is configured with ``can_introspect``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deputize.server.clients.auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.endpoints import Refusal, request_transaction
from deputize.server.http.form import read_form
from deputize.server.http.responses import json_response
from deputize.server.storage import tokens
from deputize.server.storage.request_store import SqlStore
from deputize.server.storage.tokens import HANDOFF
from deputize.server.tokens.own_tokens import verify_own_token

INACTIVE = {"active": False}
_CLAIMS = (
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "nbf",
    "jti",
    "cnf",
    "act",
    "task",
    "authorization_details",  # RFC 9396 §9.1: the details the token carries
)


async def introspect(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, max_bytes=ctx.settings.max_body_bytes)
    now = int(ctx.clock())
    result: dict[str, Any] = INACTIVE
    async with request_transaction(ctx.db, Refusal("introspect"), now) as conn:
        endpoint = ctx.settings.endpoint("/introspect")
        client = await authenticate_client(
            ctx, SqlStore(conn), request.headers, form, endpoint=endpoint
        )
        token = form.require("token")
        claims = verify_own_token(ctx, token, now=now)
        if claims is not None:
            record = await tokens.get(conn, claims["jti"])
            aud = claims.get("aud")
            audiences = [aud] if isinstance(aud, str) else list(aud or [])
            permitted = (
                client.can_introspect
                or claims.get("client_id") == client.client_id
                or client.client_id in audiences
            )
            # A hand-off is single-use: once redeemed, it can do nothing more.
            if (
                record is not None
                and record.revoked_at is None
                and record.redeemed_at is None
                and permitted
            ):
                result = {"active": True, **{k: claims[k] for k in _CLAIMS if k in claims}}
                # RFC 9449 §6.2: say how the token must be presented.  A hand-off is presented
                # nowhere but here, by its recipient: not an access token (RFC 8693 §2.2.1).
                if record.kind == HANDOFF:
                    result["token_type"] = "N_A"
                else:
                    result["token_type"] = "DPoP" if "cnf" in claims else "Bearer"
    return json_response(result)
