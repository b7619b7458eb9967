"""The JWK Set (RFC 7517 §5): public keys only, with cache headers and a strong ETag.

The set holds the next, active and still-needed retired keys (see ``keyring.py``), so caches
that honour ``max-age`` always hold every key a live token may be signed with.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from deputize.server.context import ServerContext


async def jwks(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    body = ctx.keyring.view.jwks_json
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "Cache-Control": f"public, max-age={ctx.settings.jwks_max_age}",
        "ETag": etag,
    }
    # RFC 9110 §13.1.2: a list of entity tags compared weakly (W/ ignored), or "*".
    wanted = {
        tag.strip().removeprefix("W/")
        for tag in request.headers.get("if-none-match", "").split(",")
    }
    if etag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/jwk-set+json", headers=headers)
