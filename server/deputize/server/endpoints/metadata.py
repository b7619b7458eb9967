"""Authorization server metadata (RFC 8414 §2), also served at the OpenID discovery path.

Only what is implemented is advertised.  With no authorization endpoint yet, no response type
is supported: ``response_types_supported`` is the honest empty list.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys.dpop import ALGORITHMS as DPOP_ALGORITHMS
from deputize.server.client_auth import ASSERTION_ALGORITHMS
from deputize.server.settings import AUTH_METHODS, Settings


def build_metadata(settings: Settings, grant_types: list[str]) -> dict[str, Any]:
    scopes = sorted({scope for client in settings.clients for scope in client.scopes})
    metadata: dict[str, Any] = {
        "issuer": settings.issuer,
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": settings.endpoint("/jwks"),
        "introspection_endpoint": settings.endpoint("/introspect"),
        "revocation_endpoint": settings.endpoint("/revoke"),
        "grant_types_supported": grant_types,
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),  # RFC 9449 §5.1
    }
    if scopes:
        metadata["scopes_supported"] = scopes
    return metadata


async def metadata(request: Request) -> Response:
    body: bytes = request.app.state.ctx.metadata_json
    return Response(
        body, media_type="application/json", headers={"Cache-Control": "public, max-age=300"}
    )


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")
