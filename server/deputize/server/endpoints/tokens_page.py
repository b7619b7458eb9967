"""The account page's "Agents acting for you now": the person's live delegation trees, each
node with a revoke button (a confirmation step, then a cascading revocation), and their recent
activity from the audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from deputize.server.accounts import trees
from deputize.server.clients.auth import find_client
from deputize.server.context import ServerContext
from deputize.server.endpoints.pages import current_session, page, page_form, user_label
from deputize.server.http.web import Browser, PageError, redirect, render
from deputize.server.storage import audit, tokens
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.revocation import revoke

PATH = "/account/tokens/revoke"
ACTIVITY = 20


async def acting_now(
    ctx: ServerContext, conn: AsyncConnection, sub: str, now: int
) -> list[trees.Task]:
    """The live delegation trees of ``sub``, grouped by task, with client names."""
    rows = await tokens.live_for_subject(conn, sub, now)
    names: dict[str, str] = {}
    for client_id in {r.client_id for r in rows}:
        client = await find_client(ctx, SqlStore(conn), client_id)
        names[client_id] = (client.name if client else None) or client_id
    return trees.build(rows, lambda client_id: names.get(client_id, client_id))


async def recent_activity(conn: AsyncConnection, sub: str) -> list[dict[str, Any]]:
    """The newest entries of the audit trail about ``sub``, newest first."""
    entries = await audit.query(conn, subject=sub, limit=ACTIVITY)
    return [
        {
            "event": str(e["event"]).replace("_", " "),
            "client_id": e["client_id"],
            "actors": e["actors"],
            "task": e["task"],
            "at": e["at"],
        }
        for e in reversed(entries)
    ]


@page
async def revoke_token(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    """First POST: confirm (what will be revoked); second POST with ``confirm=yes``: revoke."""
    form = await page_form(request, ctx, browser)
    now = int(ctx.clock())
    jti = form.get("token") or ""
    async with ctx.db.begin() as conn:
        found = await current_session(request, ctx, conn, now)
        if found is None:
            return redirect(ctx.settings.endpoint("/login") + "?next=account", status=302)
        sub = found[1].sub
        node = trees.subtree(await tokens.live_for_subject(conn, sub, now), jti) if jti else None
        if node is None:
            raise PageError("Nothing revoked", "That token is not yours, or no longer live.")
        if form.get("confirm") != "yes":
            return render(
                "revoke_tokens.html",
                ctx.settings,
                browser=browser,
                user_label=user_label(found[1]),
                node=node,
                count=node.count(),
                action=ctx.settings.endpoint(PATH),
                cancel_url=ctx.settings.endpoint("/account"),
            )
        await revoke(conn, now, by=f"user:{sub}", jti=jti)
    return redirect(ctx.settings.endpoint("/account") + "?done=tokens")
