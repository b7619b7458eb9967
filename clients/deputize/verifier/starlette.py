"""Starlette / ASGI adapter: middleware that verifies every request, a per-endpoint scope
decorator, and the RFC 9728 metadata endpoint.  Imports Starlette; the core does not.

    verifier = Verifier(ISSUER, RESOURCE)
    routes = [
        Route("/documents/{id}", requires("docs:read")(read_document)),
        Route("/documents/{id}", requires("docs:write")(write_document), methods=["PUT"]),
        metadata_route(RESOURCE, [ISSUER], scopes_supported=["docs:read", "docs:write"]),
    ]
    middleware = [Middleware(DeputizeMiddleware, verifier=verifier, base_url=RESOURCE)]
    app = Starlette(routes=routes, middleware=middleware)

The middleware puts the :class:`~deputize.verifier.Principal` in ``request.state.principal``.

RFC 9728 is path-aware: for a resource ``https://host/mcp`` the metadata document lives at
``/.well-known/oauth-protected-resource/mcp`` (§3.1), every challenge's ``resource_metadata``
names exactly that URL (§5.1), and the middleware lets ``GET`` of that one path through without
a token (the document is public by design).  Pass ``resource=`` when the resource identifier is
not ``base_url`` (``base_url="https://host", resource="https://host/mcp"``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from deputize.verifier.errors import InsufficientScopeError, VerificationError
from deputize.verifier.metadata import metadata_path, metadata_url, protected_resource_metadata
from deputize.verifier.principal import Principal
from deputize.verifier.verifier import Verifier

PRINCIPAL = "principal"
#: Characters a path keeps unencoded (RFC 3986 §3.3: pchar and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_VERIFIER = "deputize.verifier"


def error_headers(exc: VerificationError, verifier: Verifier, resource: str) -> dict[str, str]:
    """The refusal's headers: the RFC 6750 §3 / RFC 9449 §7.1 challenge (``Bearer`` too when
    the verifier accepts bearer tokens), pointing at ``resource``'s metadata (RFC 9728 §5.1)."""
    headers = exc.headers(algorithms=verifier.dpop_algorithms, bearer=verifier.allow_bearer)
    headers["WWW-Authenticate"] += f', resource_metadata="{metadata_url(resource)}"'
    headers["Cache-Control"] = "no-store"
    return headers


def error_response(exc: VerificationError, verifier: Verifier, resource: str) -> Response:
    """RFC 6750 §3 / RFC 9449 §7.1: the status, the challenge and a small JSON body.

    ``resource`` is the resource identifier whose metadata the challenge names (RFC 9728 §5.1).
    """
    headers = error_headers(exc, verifier, resource)
    body: dict[str, str] = {"error": exc.error, "error_description": exc.description}
    return Response(
        json.dumps(body), status_code=exc.status_code, media_type="application/json",
        headers=headers,
    )  # fmt: skip


def public_url(base_url: str, scope: Scope) -> str:
    """The request URL as our public address spells it (RFC 9449 §4.3 check 9): ``base_url``,
    never the Host header, then the path exactly as the client sent it.

    The path is the raw one, percent-encoding and all: ASGI's ``path`` is decoded, and
    ``/documents/1%3Fx`` decoded reads as ``/documents/1`` with a query, which the ``htu``
    comparison ignores, so a proof for ``/documents/1`` would pass for another resource.
    Current ASGI servers (uvicorn since 0.26) include ``root_path``, a proxy's prefix, in the
    path; older ones left it out, and for them it is put in front here.
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        path = raw.partition(b"?")[0].decode("latin-1")  # a few servers leave the query on
    else:  # raw_path is optional in ASGI: encode the decoded path again
        path = quote(scope["path"], safe=_PATH_SAFE)
    prefix = quote(scope.get("root_path", ""), safe=_PATH_SAFE)
    if not path.startswith(prefix):
        path = prefix + path
    return base_url.rstrip("/") + path


class DeputizeMiddleware:
    """Verify every HTTP request except ``exempt`` paths (by default ``GET``/``HEAD`` of the
    metadata document's path for ``resource``, and nothing else: exact match, no prefix).

    ``base_url`` is this resource's public origin (and path prefix), as clients address it;
    ``resource`` is its RFC 9728 resource identifier (default ``base_url``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        base_url: str,
        scopes: Collection[str] = (),
        exempt: Collection[str] | None = None,
        resource: str | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.base_url = base_url
        self.resource = resource or base_url
        self.scopes = tuple(scopes)
        self.metadata_path = metadata_path(self.resource)
        self.exempt = frozenset(exempt) if exempt is not None else frozenset()

    def _is_exempt(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in self.exempt:
            return True
        # RFC 9728 §3: the metadata is public; only reading it needs no token.
        return path == self.metadata_path and scope["method"] in ("GET", "HEAD")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_exempt(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = await self.verifier.averify(
                authorization=request.headers.getlist("authorization"),
                dpop=request.headers.getlist("dpop"),
                method=request.method,
                url=public_url(self.base_url, scope),
                scopes=self.scopes,
            )
        except VerificationError as exc:
            await error_response(exc, self.verifier, self.resource)(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        scope["state"][_VERIFIER] = (self.verifier, self.resource)
        await self.app(scope, receive, send)


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(*scopes: str) -> Callable[[Endpoint], Endpoint]:
    """Per-endpoint scopes, on top of the middleware's verification: 403 ``insufficient_scope``
    with the scopes named in the challenge when the token lacks one."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            principal: Principal | None = getattr(request.state, PRINCIPAL, None)
            configured: tuple[Verifier, str] | None = getattr(request.state, _VERIFIER, None)
            if principal is None or configured is None:
                raise RuntimeError("requires() needs DeputizeMiddleware in front of the app")
            if not principal.has_scopes(*scopes):
                exc = InsufficientScopeError(
                    "token lacks the scope this resource needs: "
                    + " ".join(s for s in scopes if s not in principal.scopes),
                    required=scopes,
                )
                return error_response(exc, *configured)
            return await endpoint(request)

        return wrapper

    return decorate


def metadata_route(resource: str, authorization_servers: Sequence[str], **fields: Any) -> Route:
    """A route serving RFC 9728 metadata at the well-known path for ``resource`` (§3.1:
    ``https://host/mcp`` → ``/.well-known/oauth-protected-resource/mcp``)."""
    if not urlsplit(resource).scheme:
        raise ValueError("resource must be an absolute URL")
    body = json.dumps(protected_resource_metadata(resource, authorization_servers, **fields))

    async def endpoint(request: Request) -> Response:
        return Response(
            body, media_type="application/json", headers={"Cache-Control": "public, max-age=300"}
        )

    return Route(metadata_path(resource), endpoint, methods=["GET"])
