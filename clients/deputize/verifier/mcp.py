"""Deputize in front of an MCP server built with the official Python SDK (``mcp`` >= 2.3).

Three lines::

    deputize = DeputizeMCP(Verifier(ISSUER, "https://tools.example.com/mcp", allow_bearer=True))
    server = MCPServer("tools", token_verifier=deputize.token_verifier, auth=deputize.auth)
    app = deputize.protect(server.streamable_http_app())

and, inside a tool, :func:`current_principal` is the verified :class:`Principal` (user, acting
agent, the whole ``act`` chain, scopes, task); the SDK's own ``get_access_token()`` works too
(``subject`` = the user, ``claims`` = every claim, ``act`` included).

Why two pieces.  The SDK authenticates with a ``TokenVerifier`` that receives only the token
string, behind an auth backend that passes only ``Authorization: Bearer``; a DPoP proof
(RFC 9449 §4.3: ``htm``, ``htu``, ``ath``, nonce, replay) cannot be checked there.  So:

- :class:`DeputizeTokenVerifier` implements the SDK's ``TokenVerifier`` protocol.  On its own it
  verifies *bearer* tokens locally with :class:`~deputize.verifier.Verifier` (signature, ``aud`` =
  this resource, chain policy, status list) — accepted only when the verifier was built with
  ``allow_bearer=True``, and never for a DPoP-bound token (``cnf.jkt``; RFC 9449 §7.1).
- :func:`protect` (``DeputizeMCP.protect``) is ASGI middleware in front of the SDK's app.  It
  verifies every request that carries credentials — ``DPoP`` with its proof, or ``Bearer`` when
  allowed — and refuses with RFC 6750 §3 / RFC 9449 §7.1 challenges naming the RFC 9728
  metadata (``resource_metadata``).  A verified request goes on with ``Authorization: Bearer``
  (the only scheme the SDK's backend reads) and the verified principal in a context variable;
  the token verifier accepts a token without re-checking it only when that variable holds the
  very same token string.  The mark is never a header: a client cannot set a context variable,
  and ``protect`` clears it for every request before verifying anything, so a bearer request
  cannot borrow it.  It also serves the path-aware RFC 9728 document (§3.1) without a token.

Imports the ``mcp`` package (the ``deputize[mcp]`` extra); the rest of the verifier does not.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deputize.verifier.errors import MissingTokenError, VerificationError
from deputize.verifier.metadata import metadata_path, protected_resource_metadata
from deputize.verifier.principal import Principal
from deputize.verifier.starlette import error_headers, public_url
from deputize.verifier.verifier import Verifier

__all__ = [
    "DeputizeMCP",
    "DeputizeTokenVerifier",
    "access_token",
    "current_principal",
    "protect",
]

#: (token, principal) that protect() verified, DPoP proof and all, for the request it is
#: serving; cleared on entry and reset on exit of every request, so it never outlives one.
_PROTECTED: contextvars.ContextVar[tuple[str, Principal] | None] = contextvars.ContextVar(
    "deputize_protected", default=None
)
#: (token, principal) the token verifier accepted for the current request, for
#: current_principal().  Never read to skip a check.  The SDK hands the request's context
#: variables on to the tool that serves it.
_VERIFIED: contextvars.ContextVar[tuple[str, Principal] | None] = contextvars.ContextVar(
    "deputize_verified", default=None
)


def _sole_audience(verifier: Verifier) -> str:
    if len(verifier.audience) != 1:
        raise ValueError("the verifier names several audiences: pass resource=")
    return next(iter(verifier.audience))


def access_token(token: str, principal: Principal, resource: str) -> AccessToken:
    """The SDK's ``AccessToken`` for a verified token: client, scopes, expiry, the resource
    (RFC 8707; what ``AuthSettings.validate_token_resource`` compares), the user as ``subject``
    and every claim (``iss``, ``act``, ``task`` ...) as ``claims``."""
    return AccessToken(
        token=token,
        client_id=principal.client_id,
        scopes=sorted(principal.scopes),
        expires_at=principal.expires_at or None,
        resource=resource,
        subject=principal.user,
        claims=dict(principal.claims),
    )


def current_principal() -> Principal | None:
    """The verified principal of the request being served (in a tool: its caller), or None.

    Only returned when it belongs to the token the SDK authenticated this request with.
    """
    held = _VERIFIED.get()
    if held is None:
        return None
    current = get_access_token()
    if current is None or current.token != held[0]:
        return None
    return held[1]


class DeputizeTokenVerifier:
    """The SDK's ``TokenVerifier`` (``MCPServer(token_verifier=...)``) backed by a Verifier.

    ``resource`` is this MCP server's resource identifier (default: the verifier's audience).
    """

    def __init__(self, verifier: Verifier, *, resource: str | None = None) -> None:
        self.verifier = verifier
        self.resource = resource or _sole_audience(verifier)

    async def verify_token(self, token: str) -> AccessToken | None:
        """``None`` (the SDK then answers 401) unless the token passes; never raises."""
        held = _PROTECTED.get()
        if held is not None and held[0] == token:
            # protect() verified this very token, with its DPoP proof, for this request.
            principal = held[1]
        else:
            try:
                # Bearer: refused unless the verifier allows it, and always for cnf.jkt tokens.
                principal = await self.verifier.averify(
                    authorization=f"Bearer {token}", dpop=None, method="", url=""
                )
            except VerificationError:
                return None
        _VERIFIED.set((token, principal))
        return access_token(token, principal, self.resource)


def _header(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]


class _Protected:
    """The ASGI app :func:`protect` returns."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier,
        *,
        resource: str,
        base_url: str,
        scopes: Collection[str],
        authorization_servers: Sequence[str],
        metadata: dict[str, Any],
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.resource = resource
        self.base_url = base_url
        self.scopes = tuple(scopes)
        self.metadata_path = metadata_path(resource)
        document = protected_resource_metadata(
            resource,
            authorization_servers,
            dpop_bound_access_tokens_required=not verifier.allow_bearer,
            **metadata,
        )
        self._metadata = json.dumps(document).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.metadata_path and scope["method"] in ("GET", "HEAD"):
            await self._send_metadata(send)  # RFC 9728 §3.1: public, path-aware
            return
        reset = _PROTECTED.set(None)  # nothing verified yet, whatever this context held
        try:
            await self._handle(scope, receive, send)
        finally:
            _PROTECTED.reset(reset)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = _header(scope, b"authorization")
        if not authorization:
            # No credentials: the SDK decides whether the route needs any; its refusal gets our
            # challenge (DPoP, and Bearer when allowed) instead of its Bearer-only one.
            await self.app(scope, receive, self._challenging(send))
            return
        try:
            principal = await self.verifier.averify(
                authorization=authorization,
                dpop=_header(scope, b"dpop"),
                method=scope["method"],
                url=public_url(self.base_url, scope),
                scopes=self.scopes,
            )
        except VerificationError as exc:
            await self._refuse(exc, send)
            return
        token = authorization[0].strip().partition(" ")[2].strip()
        _PROTECTED.set((token, principal))
        headers = [
            (k, v) for k, v in scope["headers"] if k.lower() not in (b"authorization", b"dpop")
        ]
        headers.append((b"authorization", b"Bearer " + token.encode("latin-1")))
        await self.app({**scope, "headers": headers}, receive, send)

    def _closing(self, send: Send) -> Send:
        """At shutdown, close the HTTP clients the verifier opened on this event loop."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.verifier.aclose()
            await send(message)

        return wrapped

    def _challenging(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                challenge = error_headers(MissingTokenError("no access token"), self.verifier,
                                          self.resource)["WWW-Authenticate"]  # fmt: skip
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"www-authenticate"]  # fmt: skip
                headers.append((b"www-authenticate", challenge.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

    async def _refuse(self, exc: VerificationError, send: Send) -> None:
        headers = error_headers(exc, self.verifier, self.resource)
        body = json.dumps({"error": exc.error, "error_description": exc.description}).encode()
        await send({
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _send_metadata(self, send: Send) -> None:
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self._metadata)).encode()),
                (b"cache-control", b"public, max-age=300"),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": self._metadata})


def protect(
    app: ASGIApp,
    verifier: Verifier,
    *,
    resource: str | None = None,
    base_url: str | None = None,
    scopes: Collection[str] = (),
    authorization_servers: Sequence[str] | None = None,
    **metadata: Any,
) -> ASGIApp:
    """Verify DPoP (and, if allowed, bearer) requests in front of the SDK's ASGI app.

    ``resource``: the resource identifier (default: the verifier's audience); ``base_url``: the
    public origin requests are addressed to, for the proof's ``htu`` (default: ``resource``'s
    origin; never taken from the Host header); ``scopes``: required on every request (403
    ``insufficient_scope``); ``metadata``: extra RFC 9728 fields (``scopes_supported``,
    ``resource_name``, ``resource_documentation``).

    At the app's shutdown (ASGI lifespan) the verifier's own HTTP clients are closed.
    """
    resource = resource or _sole_audience(verifier)
    parts = urlsplit(resource)
    if not parts.scheme or not parts.netloc:
        raise ValueError("resource must be an absolute URL")
    return _Protected(
        app,
        verifier,
        resource=resource,
        base_url=base_url or f"{parts.scheme}://{parts.netloc}",
        scopes=scopes,
        authorization_servers=list(authorization_servers or [verifier.issuer]),
        metadata=metadata,
    )


class DeputizeMCP:
    """Everything an ``MCPServer`` needs, from one :class:`~deputize.verifier.Verifier`:
    :attr:`token_verifier`, :attr:`auth` (the SDK's ``AuthSettings``) and :meth:`protect`."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        resource: str | None = None,
        required_scopes: Sequence[str] = (),
    ) -> None:
        self.verifier = verifier
        self.resource = resource or _sole_audience(verifier)
        self.required_scopes = tuple(required_scopes)
        self.token_verifier = DeputizeTokenVerifier(verifier, resource=self.resource)

    @property
    def auth(self) -> AuthSettings:
        """``AuthSettings`` for this resource: our issuer, our resource URL, the SDK's own
        resource check on (``validate_token_resource``) on top of our audience check."""
        return AuthSettings(
            issuer_url=self.verifier.issuer,  # type: ignore[arg-type]  # pydantic parses str
            resource_server_url=self.resource,  # type: ignore[arg-type]
            required_scopes=list(self.required_scopes) or None,
            validate_token_resource=True,
        )

    def protect(self, app: ASGIApp, **options: Any) -> ASGIApp:
        """:func:`protect` with this object's verifier, resource and required scopes."""
        options.setdefault("scopes", self.required_scopes)
        return protect(app, self.verifier, resource=self.resource, **options)
