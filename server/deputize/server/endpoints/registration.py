"""Dynamic client registration (RFC 7591 §3) at ``POST /register``, and client configuration
(RFC 7592 §2) at ``GET``/``PUT``/``DELETE /register/{client_id}``.

Served only when ``registration.mode`` is not ``off``: otherwise the routes do not exist
(404) and the metadata has no ``registration_endpoint``.  The rate limit per source address
counts every request to ``POST /register``, before anything else is looked at.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from deputize.server.context import ServerContext
from deputize.server.errors import InvalidClientMetadataError
from deputize.server.http.json_body import read_json
from deputize.server.http.responses import NO_STORE, json_response
from deputize.server.registration import service
from deputize.server.registration.policy import check_initial_access_token


def _source(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def register(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    settings = ctx.settings
    source = _source(request)
    ctx.registration_limiter.check(source)
    check_initial_access_token(settings.registration, request.headers.get("authorization"))
    body = await read_json(
        request, max_bytes=settings.max_body_bytes, error=InvalidClientMetadataError
    )
    now = int(ctx.clock())
    async with ctx.db.begin() as conn:
        result = await service.register(conn, settings, body, now, source=source)
    return json_response(result, status=201)


async def client_configuration(request: Request) -> Response:
    """RFC 7592 §2.1 read, §2.2 update, §2.3 delete, each with the registration access token."""
    ctx: ServerContext = request.app.state.ctx
    settings = ctx.settings
    client_id: str = request.path_params["client_id"]
    authorization = request.headers.get("authorization")
    now = int(ctx.clock())
    if request.method == "GET":
        async with ctx.db.begin() as conn:
            result = await service.read(conn, settings, client_id, authorization)
        return json_response(result)
    if request.method == "PUT":
        body = await read_json(
            request, max_bytes=settings.max_body_bytes, error=InvalidClientMetadataError
        )
        async with ctx.db.begin() as conn:
            result = await service.update(
                conn, settings, client_id, authorization, body, now, source=_source(request)
            )
        return json_response(result)
    async with ctx.db.begin() as conn:
        await service.delete(conn, client_id, authorization, now, source=_source(request))
    return Response(status_code=204, headers=NO_STORE)
