"""The token endpoint (RFC 6749 §3.2), as a checklist of named steps.

parse form -> screen DPoP proof and nonce -> authenticate client -> check grant type ->
remember proof -> dispatch grant.  All of it after the form runs in one database transaction
(see :func:`request_transaction`), which also records refusals in the audit trail — or, on
PostgreSQL, first on the batched hot path, whose writes commit in one call at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys import DPoPProof
from deputize.server.clients.auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.endpoints import Refusal, record_refusal, request_transaction
from deputize.server.errors import (
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from deputize.server.grants import Grant, TokenRequest
from deputize.server.http.form import Form, read_form
from deputize.server.http.responses import json_response
from deputize.server.registration.policy import binding_required
from deputize.server.settings import ClientConfig, Settings
from deputize.server.storage.batched import Conflict
from deputize.server.storage.request_store import RequestStore, SqlStore
from deputize.server.tokens.dpop_state import remember_proof, screen_proof


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


def _check_binding_required(
    client: ClientConfig, settings: Settings, proof: DPoPProof | None
) -> None:
    # RFC 9449 §5.2: a client registered with dpop_bound_access_tokens never gets a bearer
    # token; public clients bind too, unless registered under a policy that allows bearer.
    if proof is None and binding_required(client, settings):
        raise InvalidRequestError("this client must send a DPoP proof (dpop_bound_access_tokens)")


async def _decide(
    request: Request,
    store: RequestStore,
    form: Form,
    proof: DPoPProof | None,
    refusal: Refusal,
    now: int,
) -> Mapping[str, Any]:
    """Authenticate the client and run its grant: every check that needs the database."""
    ctx: ServerContext = request.app.state.ctx
    grants: Mapping[str, Grant] = request.app.state.grants
    client = await authenticate_client(
        ctx, store, request.headers, form, endpoint=ctx.settings.token_endpoint
    )
    refusal.client_id = client.client_id
    grant = _grant_for(grants, refusal.grant_type)
    for name in request.app.state.repeatable - grant.repeatable:
        if len(form.get_all(name)) > 1:
            raise InvalidRequestError(f"parameter {name!r} is repeated")
    _check_grant_allowed(client, grant)
    _check_binding_required(client, ctx.settings, proof)
    if proof is not None:
        await remember_proof(store, proof, ctx.settings)
    return await grant.handle(TokenRequest(ctx, store, client, form, proof, now, refusal))


async def _decide_batched(
    request: Request, form: Form, proof: DPoPProof | None, now: int
) -> Mapping[str, Any] | None:
    """PostgreSQL's hot path (``storage/batched.py``): the body if the request succeeds there.

    None when it cannot: anything refused, or a deferred write that fails at commit.  The
    caller then decides the request again in an ordinary transaction, which refuses it with
    the right error and keeps what a refusal must keep (used ``jti`` values, the audit entry).
    """
    ctx: ServerContext = request.app.state.ctx
    hot = ctx.db.hot_path
    grant = request.app.state.grants.get(form.get("grant_type"))
    if hot is None or grant is None or not grant.batched:
        return None
    store = hot.store()
    try:
        body = await _decide(request, store, form, proof, _scratch_refusal(form), now)
        await store.commit()
    except (OAuthError, Conflict):
        return None
    return body


def _scratch_refusal(form: Form) -> Refusal:
    return Refusal("token", grant_type=form.get("grant_type"), client_id=form.get("client_id"))


async def token(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    await ctx.turns.wait()
    settings = ctx.settings
    now = int(ctx.clock())
    nonce = ctx.nonces.current(now) if settings.dpop_require_nonce else None
    refusal = Refusal("token")
    try:
        try:
            form = await read_form(
                request, max_bytes=settings.max_body_bytes, repeatable=request.app.state.repeatable
            )
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
        except OAuthError as exc:
            # Refused before the request's transaction: audited on its own (not a nonce
            # challenge, which is a protocol step; Refusal.event leaves it out).
            await record_refusal(ctx.db, refusal, exc, now)
            raise
        body = await _decide_batched(request, form, proof, now)
        if body is None:
            async with request_transaction(ctx.db, refusal, now) as conn:
                body = await _decide(request, SqlStore(conn), form, proof, refusal, now)
    except OAuthError as exc:
        if nonce is not None:
            # §8.2: any response may carry a fresh nonce; it saves the client a round trip.
            exc.headers.setdefault("DPoP-Nonce", nonce)
        raise
    return json_response(body, headers={"DPoP-Nonce": nonce} if nonce else None)
