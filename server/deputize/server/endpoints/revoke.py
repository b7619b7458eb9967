"""Token revocation (RFC 7009).

An authenticated client revokes a token issued to it, and with it every token delegated from
it; a refresh token takes its whole family and the access tokens issued under it along.
Tokens Deputize cannot read (garbage, foreign, already expired) get the §2.2 answer: 200,
nothing to do.  A valid token issued to a different client is refused (§2.1) and left alone.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from deputize.server.clients.auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.endpoints import Refusal, request_transaction
from deputize.server.errors import UnauthorizedClientError
from deputize.server.http.form import read_form
from deputize.server.http.responses import NO_STORE
from deputize.server.storage import refresh
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.own_tokens import verify_own_token
from deputize.server.tokens.revocation import revoke as revoke_tokens


async def revoke(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, max_bytes=ctx.settings.max_body_bytes)
    now = int(ctx.clock())
    async with request_transaction(ctx.db, Refusal("revoke"), now) as conn:
        client = await authenticate_client(
            ctx, SqlStore(conn), request.headers, form, endpoint=ctx.settings.endpoint("/revoke")
        )
        token = form.require("token")
        # token_type_hint is only a hint (§2.1); Deputize issues one kind of token.
        claims = verify_own_token(ctx, token, now=now)
        if claims is not None:
            if claims.get("client_id") != client.client_id:
                raise UnauthorizedClientError("the token was not issued to this client")
            await revoke_tokens(conn, now, by=client.client_id, jti=claims["jti"])
        elif (row := await refresh.find(conn, token)) is not None:
            # §2.1: revoking a refresh token revokes its family and the access tokens under it.
            if row.client_id != client.client_id:
                raise UnauthorizedClientError("the token was not issued to this client")
            await refresh.revoke_grant(conn, row.grant_jti, now)
            await revoke_tokens(conn, now, by=client.client_id, jti=row.grant_jti)
    return Response(status_code=200, headers=NO_STORE)
