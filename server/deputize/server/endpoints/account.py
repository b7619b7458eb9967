"""The account page: what the signed-in user allowed, and withdrawing it."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from deputize.server.accounts import actions as accounts
from deputize.server.clients.auth import find_client
from deputize.server.context import ServerContext
from deputize.server.endpoints.approvals_page import PATH as APPROVALS_PATH
from deputize.server.endpoints.approvals_page import waiting_for
from deputize.server.endpoints.pages import current_session, page, page_form, user_label
from deputize.server.endpoints.tokens_page import PATH as TOKENS_PATH
from deputize.server.endpoints.tokens_page import acting_now, recent_activity
from deputize.server.http.web import Browser, PageError, redirect, render
from deputize.server.storage import consents
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.scope_words import describe_all, describe_details


def _sign_in(ctx: ServerContext) -> Response:
    return redirect(
        ctx.settings.endpoint("/login") + "?" + urlencode({"next": "account"}), status=302
    )


@page
async def account(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    now = int(ctx.clock())
    async with ctx.db.begin() as conn:
        found = await current_session(request, ctx, conn, now)
        if found is None:
            return _sign_in(ctx)
        _, user = found
        rows = []
        for consent in await consents.for_user(conn, user.sub, now):
            client = await find_client(ctx, SqlStore(conn), consent.client_id)
            agents = []
            for agent_id in consent.agents:
                agent = await find_client(ctx, SqlStore(conn), agent_id)
                agents.append((agent.name if agent else None) or agent_id)
            rows.append(
                {
                    "id": consent.id,
                    "client_id": consent.client_id,
                    "client_name": (client.name if client else None) or consent.client_id,
                    "scopes": describe_all(consent.scopes),
                    "details": describe_details(consent.authorization_details),
                    "agents": agents,
                    "expires_at": consent.expires_at,
                }
            )
        waiting = await waiting_for(ctx, conn, user.sub, now)
        acting = await acting_now(ctx, conn, user.sub, now)
        activity = await recent_activity(conn, user.sub)
    notice = {
        "revoked": "Access withdrawn. Those apps and agents can no longer act for you.",
        "approved": "Approved. The agent can now do what it asked, once, for a short time.",
        "denied": "Denied. The agent has been told.",
        "tokens": "Revoked, with everything delegated from it.",
    }
    return render(
        "account.html",
        ctx.settings,
        browser=browser,
        user_label=user_label(user),
        consents=rows,
        approvals=waiting,
        acting=acting,
        activity=activity,
        tokens_action=ctx.settings.endpoint(TOKENS_PATH),
        approval_action=ctx.settings.endpoint(APPROVALS_PATH),
        notice=notice.get(request.query_params.get("done", "")),
        revoke_action=ctx.settings.endpoint("/account/consents/revoke"),
        logout_action=ctx.settings.endpoint("/logout"),
    )


@page
async def revoke_consent(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    form = await page_form(request, ctx, browser)
    now = int(ctx.clock())
    async with ctx.db.begin() as conn:
        found = await current_session(request, ctx, conn, now)
        if found is None:
            return _sign_in(ctx)
        consent_id = form.get("consent") or ""
        count = await accounts.revoke_consent(
            conn, consent_id, now, by=f"user:{found[1].sub}", sub=found[1].sub
        )
    if count is None:
        raise PageError("Nothing withdrawn", "That access was already withdrawn or has expired.")
    return redirect(ctx.settings.endpoint("/account") + "?done=revoked")
