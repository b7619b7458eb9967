"""``GET /statuslists/{n}``: a signed token status list (draft-ietf-oauth-status-list)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from deputize.server.context import ServerContext
from deputize.server.tokens.status_list import LIST_SIZE, MEDIA_TYPE


async def status_list(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    number = request.path_params["number"]
    token = None
    if 0 <= number < (1 << 63) // LIST_SIZE:
        token = await ctx.status_lists.token(number, ctx.clock())
    if token is None:
        raise HTTPException(404, "no such status list")
    return Response(
        token,
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": f"public, max-age={ctx.settings.status_list_ttl}"},
    )
