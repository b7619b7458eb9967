"""The pushed authorization request endpoint (RFC 9126): ``POST /par``.

The client sends the parameters of an authorization request straight to the server, with the
client authentication of the token endpoint (§2; a public client names itself with
``client_id``), and gets back a ``request_uri`` to send the browser to ``/authorize`` with
(§2.2, §4).  The parameters are checked exactly as ``/authorize`` checks them
(:func:`start_request`, :func:`validate`), so a bad request is refused here, in JSON (§2.3),
not later in the browser.  A DPoP proof sent here binds the code to its key like ``dpop_jkt``
(RFC 9449 §10.1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys import DPoPProof
from deputize.server.clients.auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.endpoints import Refusal, record_refusal, request_transaction
from deputize.server.endpoints.authorize import (
    FORWARDED,
    RedirectError,
    start_request,
    validate,
)
from deputize.server.errors import (
    InvalidDPoPProofError,
    InvalidRequestError,
    OAuthError,
    UnauthorizedClientError,
)
from deputize.server.http.form import Form, read_form
from deputize.server.http.responses import json_response
from deputize.server.http.web import PageError
from deputize.server.settings import AUTHORIZATION_CODE, ClientConfig
from deputize.server.storage import pushed_requests
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.dpop_state import remember_proof, screen_proof


class PushedRequestError(OAuthError):
    """An authorization-request error (RFC 6749 §4.1.2.1 codes), answered in JSON (RFC 9126
    §2.3) since the client is on the line: ``invalid_scope``, ``invalid_target``, ..."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def pushed_params(
    ctx: ServerContext, client: ClientConfig, form: Form, proof: DPoPProof | None
) -> list[tuple[str, str]]:
    """The request's parameters, checked as ``/authorize`` checks them; what it will replay."""
    if AUTHORIZATION_CODE not in client.grant_types:
        raise UnauthorizedClientError("client may not use the authorization_code grant")
    if "request_uri" in form:  # RFC 9126 §2.1
        raise InvalidRequestError("request_uri must not be sent to the PAR endpoint")
    if "request" in form:
        raise PushedRequestError("request_not_supported", "request objects are not supported")
    claimed = form.get("client_id")
    if claimed is not None and claimed != client.client_id:  # RFC 9126 §2.1
        raise InvalidRequestError("client_id does not match the authenticated client")
    values = {name: form.get_all(name) for name in FORWARDED if name in form}
    values["client_id"] = [client.client_id]
    if proof is not None:
        # RFC 9449 §10.1: a proof at PAR binds the code to its key; with dpop_jkt as well,
        # both must name the same key.
        if values.get("dpop_jkt", [proof.jkt]) != [proof.jkt]:
            raise InvalidDPoPProofError("dpop_jkt does not match the DPoP proof's key")
        values["dpop_jkt"] = [proof.jkt]
    try:
        request = start_request(client, values)
        request.pushed = True
        validate(ctx, request, values)
    except PageError:
        raise InvalidRequestError(
            "redirect_uri is missing or not registered for this client"
        ) from None
    except RedirectError as exc:
        raise PushedRequestError(exc.error, exc.description) from None
    return request.params


async def par(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    settings = ctx.settings
    now = int(ctx.clock())
    nonce = ctx.nonces.current(now) if settings.dpop_require_nonce else None
    refusal = Refusal("par")
    try:
        try:
            # The size cap of every form endpoint: RFC 9126 §2.3 413 when it is exceeded.
            form = await read_form(
                request, max_bytes=settings.max_body_bytes, repeatable=("resource",)
            )
            refusal.client_id = form.get("client_id")
            proof = screen_proof(
                request.headers.getlist("dpop"),
                settings=settings,
                nonces=ctx.nonces,
                method="POST",
                url=settings.par_endpoint,
                now=now,
            )
        except OAuthError as exc:
            await record_refusal(ctx.db, refusal, exc, now)
            raise
        async with request_transaction(ctx.db, refusal, now) as conn:
            store = SqlStore(conn)
            client = await authenticate_client(
                ctx, store, request.headers, form, endpoint=settings.par_endpoint
            )
            refusal.client_id = client.client_id
            if proof is not None:
                await remember_proof(store, proof, settings)
            params = pushed_params(ctx, client, form, proof)
            request_uri = pushed_requests.new_request_uri()
            await pushed_requests.store(
                conn, request_uri, client_id=client.client_id, params=params,
                expires_at=now + settings.pushed_request_lifetime,
            )  # fmt: skip
    except OAuthError as exc:
        if nonce is not None:
            exc.headers.setdefault("DPoP-Nonce", nonce)  # RFC 9449 §8.2
        raise
    body = {"request_uri": request_uri, "expires_in": settings.pushed_request_lifetime}
    return json_response(body, status=201, headers={"DPoP-Nonce": nonce} if nonce else None)
