"""JSON responses for OAuth endpoints, and the one place errors become responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys._json import dumps
from deputize.server.errors import OAuthError

logger = logging.getLogger("deputize.server")

#: RFC 6749 §5.1: token responses (and anything carrying token data) must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(
    body: Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


def error_response(request: Request, exc: Exception) -> Response:
    """RFC 6749 §5.2 error body.  ``debug`` is logged, never sent."""
    assert isinstance(exc, OAuthError)
    if exc.status_code >= 500 or exc.debug:
        logger.warning(
            "%s %s -> %s: %s%s",
            request.method,
            request.url.path,
            exc.error,
            exc.description,
            f" ({exc.debug})" if exc.debug else "",
        )
    return json_response(
        {"error": exc.error, "error_description": exc.description},
        status=exc.status_code,
        headers=exc.headers,
    )
