"""The Starlette application: routes, start-up (migrations, keys, secrets) and error handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from deputize.keys.nonces import NonceSource
from deputize.server.approvals.answers import expire_all as expire_approvals
from deputize.server.approvals.webhook import Webhook
from deputize.server.client_documents import ClientDocuments
from deputize.server.clients.remote_jwks import RemoteJWKS
from deputize.server.context import ServerContext
from deputize.server.delegation.policy_reload import reload_on_sighup
from deputize.server.endpoints.account import account, revoke_consent
from deputize.server.endpoints.approvals_page import PATH as APPROVALS_PATH
from deputize.server.endpoints.approvals_page import answer_approval
from deputize.server.endpoints.authorize import authorize
from deputize.server.endpoints.backchannel import PATH as BACKCHANNEL_PATH
from deputize.server.endpoints.backchannel import backchannel
from deputize.server.endpoints.decide import decide_endpoint
from deputize.server.endpoints.home import Home
from deputize.server.endpoints.introspect import introspect
from deputize.server.endpoints.jwks import jwks
from deputize.server.endpoints.login import login, logout
from deputize.server.endpoints.metadata import build_metadata, encode, metadata
from deputize.server.endpoints.par import par
from deputize.server.endpoints.registration import client_configuration, register
from deputize.server.endpoints.revoke import revoke
from deputize.server.endpoints.status_list import status_list
from deputize.server.endpoints.token import token
from deputize.server.endpoints.tokens_page import PATH as TOKENS_PATH
from deputize.server.endpoints.tokens_page import revoke_token
from deputize.server.endpoints.userinfo import userinfo
from deputize.server.errors import OAuthError, TemporarilyUnavailableError
from deputize.server.grants.registry import registry
from deputize.server.http.cors import CORS, public_client_origins
from deputize.server.http.responses import error_response, json_response
from deputize.server.keyring import Keyring
from deputize.server.registration.policy import RateLimiter, enabled
from deputize.server.settings import Settings
from deputize.server.storage import (
    approvals,
    codes,
    pushed_requests,
    refresh,
    registrations,
    replay,
    secrets,
    sessions,
    tokens,
    users,
)
from deputize.server.storage.database import Database
from deputize.server.storage.outage import DRIVER_ERRORS, Timeouts, unavailable_cause
from deputize.server.tokens.status_list import PATH as STATUS_LIST_PATH
from deputize.server.tokens.status_list import StatusAllocator, StatusListPublisher

logger = logging.getLogger("deputize.server")

#: Ledger rows are kept this long past expiry, then purged.
_LEDGER_RETENTION = 3600


async def _maintenance(ctx: ServerContext) -> None:
    """Reload keys (rotations by other instances) and purge expired replay and ledger rows."""
    interval = ctx.settings.key_refresh_interval
    while True:
        await asyncio.sleep(interval)
        now = int(ctx.clock())
        try:
            await ctx.keyring.refresh(ctx.db, now)
            async with ctx.db.begin() as conn:
                await replay.purge(conn, now)
                # Before the ledger purge: a registered client with tokens is marked used.
                await registrations.mark_used(conn, now)
                expiry = ctx.settings.registration.unused_expiry
                if enabled(ctx.settings.registration) and expiry:
                    await registrations.remove_unused(conn, now, older_than=now - expiry)
                await tokens.purge_expired(conn, now - _LEDGER_RETENTION)
                await sessions.purge(conn, now)
                await codes.purge(conn, now - _LEDGER_RETENTION)
                await pushed_requests.purge(conn, now)
                await expire_approvals(conn, now)  # audited as they expire, then kept a while
                await approvals.purge(conn, now - _LEDGER_RETENTION)
                await refresh.purge(conn, now - _LEDGER_RETENTION)
                await users.purge_throttle(conn, now - 86_400)
        except Exception as exc:  # keep serving with the last good state; say so in the log
            cause = unavailable_cause(exc)
            if cause is None:
                logger.exception("maintenance run failed")
            else:
                ctx.db.outages.report(cause)


async def start_context(settings: Settings, clock: Callable[[], float]) -> ServerContext:
    timeouts = Timeouts(
        connect=settings.database_connect_timeout,
        statement=settings.database_statement_timeout,
        pool=settings.database_pool_timeout,
    )
    db = Database(settings.async_database_url, timeouts=timeouts)
    await db.migrate()
    await db.open_hot_path()
    now = int(clock())
    keyring = Keyring(settings)
    await keyring.start(db, now)
    async with db.begin() as conn:
        nonce_secret = await secrets.get_or_create(conn, "dpop_nonce_key", now)
        page_key = await secrets.get_or_create(conn, "page_csrf_key", now)
    status_allocator = StatusAllocator(db)
    await status_allocator.start()
    http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
    ctx = ServerContext(
        settings=settings,
        db=db,
        keyring=keyring,
        nonces=NonceSource(nonce_secret.encode("ascii"), lifetime=settings.dpop_nonce_lifetime),
        remote_jwks=RemoteJWKS(http),
        http=http,
        static_clients={client.client_id: client for client in settings.clients},
        trusted_issuers={issuer.issuer: issuer for issuer in settings.trusted_issuers},
        status_allocator=status_allocator,
        status_lists=StatusListPublisher(settings, db, keyring),
        clock=clock,
        page_key=page_key.encode("ascii"),
        registration_limiter=RateLimiter(settings.registration.rate_limit),
    )
    if settings.client_documents.enabled:
        ctx.client_documents = ClientDocuments(
            settings.client_documents, clock, audiences=settings.registration.audiences
        )
    if settings.approvals.webhook is not None:
        ctx.webhook = Webhook(
            settings.approvals.webhook, account_url=settings.endpoint("/account"), clock=clock
        )
    return ctx


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return json_response(
        {"error": code, "error_description": exc.detail},
        status=exc.status_code,
        headers=exc.headers,
    )


#: What a client is told when the database is unavailable (the cause goes to the log only).
UNAVAILABLE = "the service is temporarily unavailable; try again shortly"


def unavailable_response(request: Request, cause: str) -> Response:
    """503 ``temporarily_unavailable``, and one log line per kind of failure per interval.

    An expected fault, not a bug: no traceback, and a normal response, so the client's
    keep-alive connection stays usable for its retry.
    """
    ctx: ServerContext = request.app.state.ctx
    ctx.db.outages.report(cause)
    exc = TemporarilyUnavailableError(UNAVAILABLE)
    return json_response(
        {"error": exc.error, "error_description": exc.description},
        status=exc.status_code,
        headers=exc.headers,
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    cause = unavailable_cause(exc)
    if cause is not None:
        return unavailable_response(request, cause)
    # The traceback goes to the server log only; the client learns nothing about internals.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response(
        {"error": "server_error", "error_description": "internal error"}, status=500
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its request body was complete: nobody is left to answer, and
    nothing went wrong here, so no traceback — a line in the log, and an answer no one reads."""
    logger.info("%s %s: the client went away mid-request", request.method, request.url.path)
    return Response(status_code=400)


def _from_browser(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])


class DeputizeApp(Starlette):
    """Starlette, with ``POST /token`` served without the middleware and router layers.

    The token endpoint is the hot path of every agent hop, and Starlette's layers (error and
    exception middleware, CORS, the router, the request/response wrapper) cost a few per cent
    of an exchange (decision 0007).  This path answers exactly as they would: the same
    endpoint, the same exception handlers.  A request from a browser (``Origin``), any other
    method or path, and anything not plain HTTP take the ordinary route.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/token"
            and scope["method"] == "POST"
            and not _from_browser(scope)
        ):
            scope["app"] = self
            request = Request(scope, receive)
            try:
                response = await token(request)
            except OAuthError as exc:
                response = error_response(request, exc)
            except HTTPException as exc:
                response = await _http_error(request, exc)
            except ClientDisconnect as exc:
                response = await _client_gone(request, exc)
            except Exception as exc:
                response = await _server_error(request, exc)
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> Starlette:
    grants = registry()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx = await start_context(settings, clock)
        ctx.metadata_json = encode(build_metadata(settings, sorted(grants)))
        app.state.ctx = ctx
        app.state.grants = grants
        app.state.repeatable = frozenset().union(*(g.repeatable for g in grants.values()))
        task = asyncio.create_task(_maintenance(ctx))
        reload_on_sighup(ctx)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await ctx.status_allocator.stop()
            await ctx.http.aclose()
            if ctx.webhook is not None:
                await ctx.webhook.aclose()
            if ctx.client_documents is not None:
                await ctx.client_documents.aclose()
            await ctx.db.dispose()

    routes = [
        Route("/token", token, methods=["POST"]),  # first: routes are matched in order
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/decide", decide_endpoint, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/par", par, methods=["POST"]),  # RFC 9126
        Route(BACKCHANNEL_PATH, backchannel, methods=["POST"]),  # OpenID CIBA
        Route(STATUS_LIST_PATH + "{number:int}", status_list, methods=["GET"]),
        # People: sign-in, consent, account, OpenID Connect.
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["GET", "POST"]),
        Route("/account", account, methods=["GET"]),
        Route("/account/consents/revoke", revoke_consent, methods=["POST"]),
        Route(TOKENS_PATH, revoke_token, methods=["POST"]),
        Route(APPROVALS_PATH, answer_approval, methods=["POST"]),
        Route("/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/", Home()),  # every method: all but a browser's GET get the old JSON 404
    ]
    if enabled(settings.registration):  # off: no route, a JSON 404 (endpoints/registration.py)
        routes += [
            Route("/register", register, methods=["POST"]),
            Route("/register/{client_id}", client_configuration, methods=["GET", "PUT", "DELETE"]),
        ]
    return DeputizeApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(CORS, origins=public_client_origins(settings.clients)),
        ],
        exception_handlers={
            OAuthError: error_response,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            # Handled here, not by the catch-all below: Starlette re-raises what reaches that
            # one to the server, which logs a traceback and closes the client's connection.
            **dict.fromkeys(DRIVER_ERRORS, _server_error),
            Exception: _server_error,
        },
    )
