"""CORS for browser-based public clients (single-page apps), on the endpoints they call.

A page at one of the origins a public client (``token_endpoint_auth_method: none``) registered
as a ``redirect_uris`` origin may call the token, PAR, revocation and UserInfo endpoints from
script; discovery and the JWKS are public documents, readable from any origin.  Credentials
(cookies) are never allowed cross-origin, so no browser session can be used this way; the sign-in
pages themselves get no CORS headers at all.  Runtime-registered clients are not covered (the
list is built from the configuration at start).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deputize.server.settings import PUBLIC_CLIENT, ClientConfig

_PUBLIC_DOCUMENTS: Final = frozenset(
    {"/jwks", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}
)
_CLIENT_ENDPOINTS: Final = frozenset({"/token", "/par", "/revoke", "/userinfo"})
_ALLOW_HEADERS: Final = "Authorization, Content-Type, DPoP"
_EXPOSE_HEADERS: Final = "DPoP-Nonce, WWW-Authenticate"


def public_client_origins(clients: Iterable[ClientConfig]) -> frozenset[str]:
    origins = set()
    for client in clients:
        if client.token_endpoint_auth_method != PUBLIC_CLIENT:
            continue
        for uri in client.redirect_uris:
            parts = urlsplit(uri)
            if parts.scheme in ("http", "https") and parts.netloc:
                origins.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(origins)


class CORS:
    def __init__(self, app: ASGIApp, *, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    def _allowed(self, path: str, origin: str) -> str | None:
        """The Access-Control-Allow-Origin value for this request, or None."""
        if path in _PUBLIC_DOCUMENTS:
            return "*"
        if path in _CLIENT_ENDPOINTS and origin in self.origins:
            return origin
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = self._allowed(scope["path"], origin) if origin is not None else None
        if allowed is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": allowed,
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
            await preflight(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = allowed
                response_headers["Access-Control-Expose-Headers"] = _EXPOSE_HEADERS
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)
