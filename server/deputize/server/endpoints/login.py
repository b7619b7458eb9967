"""Sign-in and sign-out pages.

Sign-in is throttled per user name typed, known or not: after ``sign_in.max_failed_attempts``
failures within ``sign_in.lockout`` seconds the name is locked for that long, and the page
says so plainly.  An attempt is counted *before* the password is checked, so parallel guesses
each use one up; a success forgets them.  Unknown user and wrong password get the same answer
and the same argon2 work.  Successes and failures go to the audit trail (identifiers only: a
name that matches no user is not recorded, it may be a mistyped password).

Sign-out follows OpenID Connect RP-Initiated Logout 1.0: ``post_logout_redirect_uri`` must be
registered for the client named by ``client_id`` or by the ``id_token_hint``'s audience.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys import JoseError, parse
from deputize.server.accounts.passwords import verify_password
from deputize.server.clients.auth import find_client
from deputize.server.context import ServerContext
from deputize.server.endpoints.pages import current_session, page, page_form, user_label
from deputize.server.http.web import (
    SESSION_COOKIE,
    Browser,
    PageError,
    clear_cookie,
    read_cookie,
    redirect,
    render,
    set_cookie,
)
from deputize.server.storage import audit, sessions, users
from deputize.server.storage.request_store import SqlStore

SIGN_IN: Final = "sign_in"
SIGN_IN_FAILED: Final = "sign_in_failed"
SIGN_IN_LOCKED: Final = "sign_in_locked"
SIGNED_OUT: Final = "signed_out"
_WRONG: Final = "Wrong user name or password."


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: only our own authorize endpoint or account page."""
    if value is not None and (value == "account" or value.startswith("authorize?")):
        return value
    return "account"


def _locked_message(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Too many failed sign-in attempts for this user name. For your safety it is locked: "
        f"try again in {minutes} {unit}."
    )


async def _client_name(ctx: ServerContext, next_: str) -> str | None:
    if not next_.startswith("authorize?"):
        return None
    client_id = parse_qs(next_.partition("?")[2]).get("client_id", [None])[0]
    if client_id is None:
        return None
    async with ctx.db.begin() as conn:
        client = await find_client(ctx, SqlStore(conn), client_id)
    return (client.name or client.client_id) if client else None


def _login_page(
    ctx: ServerContext,
    browser: Browser,
    next_: str,
    *,
    client_name: str | None,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> Response:
    return render(
        "login.html",
        ctx.settings,
        status=status,
        browser=browser,
        action=ctx.settings.endpoint("/login"),
        return_to=next_,
        client_name=client_name,
        error=error,
        username=username,
    )


@page
async def login(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    settings = ctx.settings
    if request.method == "GET":
        next_ = safe_next(request.query_params.get("next"))
        return _login_page(ctx, browser, next_, client_name=await _client_name(ctx, next_))

    form = await page_form(request, ctx, browser)
    next_ = safe_next(form.get("return_to"))
    username = (form.get("username") or "").strip()
    password = form.get("password") or ""
    client_name = await _client_name(ctx, next_)
    if not username or not password:
        return _login_page(
            ctx, browser, next_, client_name=client_name, username=username[:64],
            error="Enter your user name and password.", status=400,
        )  # fmt: skip
    now = int(ctx.clock())
    key = users.throttle_key(username)
    async with ctx.db.begin() as conn:
        attempt = await users.reserve_attempt(
            conn, key, now, max_failures=settings.max_failed_sign_ins,
            lockout=settings.sign_in_lockout,
        )  # fmt: skip
        user = await users.get(conn, username) if len(username) <= 64 else None
        if not attempt.allowed:
            await audit.append(
                conn,
                audit.AuditEvent(
                    event=SIGN_IN_LOCKED,
                    subject=user.sub if user else None,
                    reason="user name locked after repeated failures",
                ),
                now,
            )
    if not attempt.allowed:
        assert attempt.locked_until is not None
        return _login_page(
            ctx, browser, next_, client_name=client_name, username=username[:64],
            error=_locked_message(attempt.locked_until - now), status=429,
        )  # fmt: skip

    # The slow hash runs outside any transaction (SQLite would hold its write lock meanwhile).
    ok = await verify_password(password, user.password_hash if user else None)
    now = int(ctx.clock())
    async with ctx.db.begin() as conn:
        if ok and user is not None and user.active:
            await users.clear(conn, key)
            previous = read_cookie(request, settings, SESSION_COOKIE)
            if previous is not None:  # whoever was signed in here before is signed out
                await sessions.end(conn, sessions.digest(previous))
            value = await sessions.create(conn, user.sub, now, settings.session_lifetime)
            await audit.append(conn, audit.AuditEvent(event=SIGN_IN, subject=user.sub), now)
            response = redirect(settings.endpoint("/" + next_))
            set_cookie(response, settings, SESSION_COOKIE, value, max_age=settings.session_lifetime)
            browser.keep(response)
            return response
        locked_until = await users.lock_if_exhausted(
            conn, key, now, max_failures=settings.max_failed_sign_ins,
            lockout=settings.sign_in_lockout,
        )  # fmt: skip
        reason = "wrong password" if user is not None else "unknown user name"
        if ok and user is not None:
            reason = "user is disabled"
        await audit.append(
            conn,
            audit.AuditEvent(
                event=SIGN_IN_FAILED,
                subject=user.sub if user else None,
                reason=reason + ("; now locked" if locked_until else ""),
            ),
            now,
        )
    if locked_until is not None:
        message = _locked_message(locked_until - now)
    elif ok and user is not None:
        message = "This account is disabled. Ask your administrator."
    else:
        message = _WRONG
    return _login_page(
        ctx, browser, next_, client_name=client_name, username=username[:64], error=message,
        status=429 if locked_until else 401,
    )  # fmt: skip


async def _post_logout_target(ctx: ServerContext, params: dict[str, str]) -> str | None:
    """RP-Initiated Logout §2-3: a redirect only to a URI registered for the named client."""
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return None
    client_id = params.get("client_id")
    hint = params.get("id_token_hint")
    if hint is not None:
        view = ctx.keyring.view
        try:
            parsed = parse(hint, algorithms=view.algorithms, typ=None)
            key = view.verification.find(parsed)
            claims = parsed.verify(key) if key is not None else None
        except JoseError:
            claims = None
        aud = claims.get("aud") if claims and claims.get("iss") == ctx.settings.issuer else None
        if not isinstance(aud, str) or client_id not in (None, aud):
            raise PageError("Sign-out refused", "The sign-out request names an unknown app.")
        client_id = aud
    if client_id is None:
        raise PageError("Sign-out refused", "post_logout_redirect_uri needs a client_id.")
    async with ctx.db.begin() as conn:
        client = await find_client(ctx, SqlStore(conn), client_id)
    if client is None or uri not in client.post_logout_redirect_uris:
        raise PageError(
            "Sign-out refused", "The app asked to send you to an address it has not registered."
        )
    state = params.get("state")
    query = urlencode({"state": state}) if state else ""
    return uri + (("&" if "?" in uri else "?") + query if query else "")


_LOGOUT_PARAMS: Final = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


@page
async def logout(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    settings = ctx.settings
    now = int(ctx.clock())
    if request.method == "GET":
        params = {k: v for k, v in request.query_params.items() if k in _LOGOUT_PARAMS}
        target = await _post_logout_target(ctx, params)
        async with ctx.db.begin() as conn:
            found = await current_session(request, ctx, conn, now)
        if found is None and target is not None:
            return redirect(target, status=302)
        return render(
            "logout.html",
            settings,
            browser=browser,
            signed_in=found is not None,
            user_label=user_label(found[1]) if found else "",
            action=settings.endpoint("/logout"),
            params=sorted(params.items()),
        )
    form = await page_form(request, ctx, browser)
    params = {k: v for k in _LOGOUT_PARAMS if (v := form.get(k)) is not None}
    target = await _post_logout_target(ctx, params)
    async with ctx.db.begin() as conn:
        found = await current_session(request, ctx, conn, now)
        if found is not None:
            await sessions.end(conn, found[0].id_hash)
            await audit.append(conn, audit.AuditEvent(event=SIGNED_OUT, subject=found[1].sub), now)
    if target is not None:
        response = redirect(target)
    else:
        response = render("logout.html", settings, browser=browser, signed_in=False)
    clear_cookie(response, settings, SESSION_COOKIE)
    return response
