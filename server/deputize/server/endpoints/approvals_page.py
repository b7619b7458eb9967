"""Approvals on the account page: what agents acting for the signed-in person are waiting for
(OpenID CIBA, poll mode), with approve and deny buttons; and the form that answers.

A person sees, and may answer, the requests acting for them; a holder of one of
``approvals.approver_roles`` sees and may answer everyone's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from deputize.server.approvals.answers import AnswerError, answer, may_answer
from deputize.server.approvals.words import chain_in_words, wants_in_words
from deputize.server.context import ServerContext
from deputize.server.endpoints.pages import current_session, page, page_form
from deputize.server.http.web import Browser, PageError, redirect
from deputize.server.storage import approvals

PATH = "/account/approvals"


async def waiting_for(
    ctx: ServerContext, conn: AsyncConnection, sub: str, now: int
) -> list[dict[str, Any]]:
    """The pending requests ``sub`` may answer, in words, for the account page."""
    approver = await may_answer(conn, ctx.settings, sub, asker="")
    rows = await approvals.pending(conn, now, sub=None if approver else sub)
    return [
        {
            "id": r.id,
            "who": chain_in_words(r.actors, person="you" if r.sub == sub else r.sub),
            "wants": wants_in_words(r.authorization_details),
            "binding_message": r.binding_message,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
        }
        for r in rows
    ]


@page
async def answer_approval(request: Request, ctx: ServerContext, browser: Browser) -> Response:
    form = await page_form(request, ctx, browser)
    now = int(ctx.clock())
    decision = form.get("decision")
    if decision not in ("approve", "deny"):
        raise PageError("Nothing recorded", "Choose Approve or Deny.")
    async with ctx.db.begin() as conn:
        found = await current_session(request, ctx, conn, now)
        if found is None:
            return redirect(ctx.settings.endpoint("/login") + "?next=account", status=302)
        sub = found[1].sub
        asked = await approvals.get(conn, form.get("approval") or "")
        if asked is None or not await may_answer(conn, ctx.settings, sub, asker=asked.sub):
            raise PageError("Nothing recorded", "That request is not yours to answer.")
        try:
            await answer(conn, asked.id, approve=decision == "approve", by=sub, now=now)
        except AnswerError as exc:
            raise PageError("Nothing recorded", f"{exc}.") from None
    done = "approved" if decision == "approve" else "denied"
    return redirect(ctx.settings.endpoint("/account") + "?done=" + done)
