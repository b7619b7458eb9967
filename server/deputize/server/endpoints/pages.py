"""Plumbing shared by the sign-in pages: the handler wrapper, forms, the current session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from deputize.server.context import ServerContext
from deputize.server.errors import OAuthError, TemporarilyUnavailableError
from deputize.server.http.form import Form, read_form
from deputize.server.http.web import SESSION_COOKIE, Browser, PageError, error_page, read_cookie
from deputize.server.storage import sessions, users
from deputize.server.storage.outage import unavailable_cause

PageHandler = Callable[[Request, ServerContext, Browser], Awaitable[Response]]


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """Give the handler the context and the browser's CSRF anchor; show refusals as a page."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        ctx: ServerContext = request.app.state.ctx
        browser = Browser(request, ctx.settings, ctx.page_key)
        try:
            return await handler(request, ctx, browser)
        except PageError as exc:
            return error_page(ctx.settings, exc, browser)
        except Exception as exc:
            cause = unavailable_cause(exc)
            if cause is None:
                raise
            return _unavailable_page(ctx, browser, cause)

    return endpoint


def _unavailable_page(ctx: ServerContext, browser: Browser, cause: str) -> Response:
    """The database is unavailable: a 503 page a person can act on (the JSON endpoints answer
    ``temporarily_unavailable``, ``app.py``), and one log line per kind per interval."""
    ctx.db.outages.report(cause)
    retry = TemporarilyUnavailableError.retry_after
    response = error_page(
        ctx.settings,
        PageError(
            "Temporarily unavailable",
            f"This service cannot reach its database just now. Wait {retry} seconds, then "
            "reload the page.",
            status=503,
        ),
        browser,
    )
    response.headers["Retry-After"] = str(retry)
    return response


async def page_form(request: Request, ctx: ServerContext, browser: Browser) -> Form:
    """A posted form whose CSRF token is good (checked before anything else is looked at)."""
    try:
        form = await read_form(
            request, max_bytes=ctx.settings.max_body_bytes, repeatable=("resource",)
        )
    except OAuthError as exc:
        raise PageError("Request refused", exc.description, status=exc.status_code) from None
    browser.check(request, form.get("csrf"))
    return form


async def current_session(
    request: Request, ctx: ServerContext, conn: AsyncConnection, now: int
) -> tuple[sessions.Session, users.User] | None:
    value = read_cookie(request, ctx.settings, SESSION_COOKIE)
    if value is None:
        return None
    session = await sessions.find(conn, value, now)
    if session is None:
        return None
    user = await users.get(conn, session.sub)
    if user is None or not user.active:
        return None
    return session, user


def user_label(user: users.User) -> str:
    return f"{user.name} ({user.sub})" if user.name else user.sub
