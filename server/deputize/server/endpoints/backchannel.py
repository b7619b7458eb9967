"""The backchannel authentication endpoint (OpenID CIBA Core 1.0 §7): ``POST /bc-authorize``.

An agent, authenticated as at the token endpoint, asks its person to approve an action; the
answer (§7.3) is the ``auth_req_id`` it then polls the token endpoint with, ``expires_in`` and
``interval``.  What is checked is in ``approvals/asking.py``; refusals are JSON errors (§13),
audited as ``approval_refused``.  Once the request is committed, ``approvals.webhook`` (if set)
is told of it in the background (``approvals/webhook.py``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from deputize.server.approvals.asking import ask
from deputize.server.clients.auth import authenticate_client
from deputize.server.context import ServerContext
from deputize.server.endpoints import Refusal, record_refusal, request_transaction
from deputize.server.errors import OAuthError
from deputize.server.http.form import read_form
from deputize.server.http.responses import json_response
from deputize.server.storage.request_store import SqlStore

PATH = "/bc-authorize"


async def backchannel(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    settings = ctx.settings
    now = int(ctx.clock())
    refusal = Refusal("backchannel")
    try:
        form = await read_form(request, max_bytes=settings.max_body_bytes)
    except OAuthError as exc:
        await record_refusal(ctx.db, refusal, exc, now)
        raise
    refusal.client_id = form.get("client_id")
    async with request_transaction(ctx.db, refusal, now) as conn:
        store = SqlStore(conn)
        endpoint = settings.endpoint(PATH)
        client = await authenticate_client(ctx, store, request.headers, form, endpoint=endpoint)
        refusal.client_id = client.client_id
        asked = await ask(ctx, store, client, form, now)
    if ctx.webhook is not None:  # committed: tell the platform, without waiting for it
        ctx.webhook.announce(asked.request)
    body = {"auth_req_id": asked.auth_req_id, "expires_in": asked.expires_in,
            "interval": asked.interval}  # fmt: skip
    return json_response(body, status=200)
