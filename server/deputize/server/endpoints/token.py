"""The token endpoint (RFC 6749 §3.2), as a checklist of named steps.

parse form -> authenticate client -> check grant type -> check DPoP proof -> dispatch grant.
All of it runs in one database transaction (see :func:`request_transaction`).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys import DPoPProof
from deputize.server.client_auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.dpop_state import check_proof
from deputize.server.endpoints import request_transaction
from deputize.server.errors import (
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from deputize.server.form import read_form
from deputize.server.grants import Grant, TokenRequest
from deputize.server.responses import json_response
from deputize.server.settings import ClientConfig


def _grant_for(grants: Mapping[str, Grant], grant_type: str | None) -> Grant:
    if grant_type is None:
        raise InvalidRequestError("missing required parameter 'grant_type'")
    grant = grants.get(grant_type)
    if grant is None:
        raise UnsupportedGrantTypeError(f"grant type {grant_type!r} is not supported")
    return grant


def _check_grant_allowed(client: ClientConfig, grant: Grant) -> None:
    if grant.grant_type not in client.grant_types:
        raise UnauthorizedClientError(f"client may not use the {grant.grant_type} grant")


def _check_binding_required(client: ClientConfig, proof: DPoPProof | None) -> None:
    # RFC 9449 §5.2: a client registered with dpop_bound_access_tokens never gets a bearer token.
    if client.dpop_bound_access_tokens and proof is None:
        raise InvalidRequestError("this client must send a DPoP proof (dpop_bound_access_tokens)")


async def token(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    grants: Mapping[str, Grant] = request.app.state.grants
    repeatable = frozenset().union(*(g.repeatable for g in grants.values()))
    form = await read_form(request, max_bytes=ctx.settings.max_body_bytes, repeatable=repeatable)
    now = int(ctx.clock())
    nonce = ctx.nonces.current(now) if ctx.settings.dpop_require_nonce else None
    try:
        async with request_transaction(ctx.db) as conn:
            client = await authenticate_client(
                ctx, conn, request.headers, form, endpoint=ctx.settings.token_endpoint
            )
            grant = _grant_for(grants, form.get("grant_type"))
            for name in repeatable - grant.repeatable:
                if len(form.get_all(name)) > 1:
                    raise InvalidRequestError(f"parameter {name!r} is repeated")
            _check_grant_allowed(client, grant)
            proof = await check_proof(
                conn,
                request.headers.getlist("dpop"),
                settings=ctx.settings,
                nonces=ctx.nonces,
                method="POST",
                url=ctx.settings.token_endpoint,
                now=now,
            )
            _check_binding_required(client, proof)
            body = await grant.handle(TokenRequest(ctx, conn, client, form, proof, now))
    except OAuthError as exc:
        if nonce is not None:
            # §8.2: any response may carry a fresh nonce; it saves the client a round trip.
            exc.headers.setdefault("DPoP-Nonce", nonce)
        raise
    return json_response(body, headers={"DPoP-Nonce": nonce} if nonce else None)
