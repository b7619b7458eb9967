"""The token endpoint (RFC 6749 §3.2), as a checklist of named steps.

parse form -> screen DPoP proof and nonce -> authenticate client -> check grant type ->
remember proof -> dispatch grant.  All of it after the form runs in one database transaction
(see :func:`request_transaction`), which also records refusals in the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys import DPoPProof
from deputize.server.client_auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.dpop_state import remember_proof, screen_proof
from deputize.server.endpoints import Refusal, request_transaction
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
    settings = ctx.settings
    grants: Mapping[str, Grant] = request.app.state.grants
    repeatable = frozenset().union(*(g.repeatable for g in grants.values()))
    now = int(ctx.clock())
    nonce = ctx.nonces.current(now) if settings.dpop_require_nonce else None
    refusal = Refusal("token")
    try:
        form = await read_form(request, max_bytes=settings.max_body_bytes, repeatable=repeatable)
        refusal.grant_type = form.get("grant_type")
        refusal.client_id = form.get("client_id")  # as claimed, until authenticated
        proof = screen_proof(
            request.headers.getlist("dpop"),
            settings=settings,
            nonces=ctx.nonces,
            method="POST",
            url=settings.token_endpoint,
            now=now,
        )
        async with request_transaction(ctx.db, refusal, now) as conn:
            client = await authenticate_client(
                ctx, conn, request.headers, form, endpoint=settings.token_endpoint
            )
            refusal.client_id = client.client_id
            grant = _grant_for(grants, refusal.grant_type)
            for name in repeatable - grant.repeatable:
                if len(form.get_all(name)) > 1:
                    raise InvalidRequestError(f"parameter {name!r} is repeated")
            _check_grant_allowed(client, grant)
            _check_binding_required(client, proof)
            if proof is not None:
                await remember_proof(conn, proof, settings)
            body = await grant.handle(TokenRequest(ctx, conn, client, form, proof, now, refusal))
    except OAuthError as exc:
        if nonce is not None:
            # §8.2: any response may carry a fresh nonce; it saves the client a round trip.
            exc.headers.setdefault("DPoP-Nonce", nonce)
        raise
    return json_response(body, headers={"DPoP-Nonce": nonce} if nonce else None)
