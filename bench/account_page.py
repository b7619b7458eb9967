"""Server CPU to render the account page for a person with 200 live tokens in 20 trees.

Goal (issue 18 §4): at most 50 ms of server CPU per render.  The ledger rows are inserted
directly; each render reads the live trees and the recent activity in one transaction and
renders ``account.html`` with them, timed with ``time.process_time`` (the median of N renders).
The session lookup and the consents list, which the page also reads, are not included.

    .venv/bin/python bench/account_page.py [--renders 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

from deputize.server.app import start_context
from deputize.server.endpoints.tokens_page import acting_now, recent_activity
from deputize.server.http.web import render
from deputize.server.settings import parse_settings
from deputize.server.storage import tokens

GOAL_MS = 50.0
TREES, PER_TREE = 20, 10
AGENTS = ["agent-a", "agent-b", "agent-c"]


async def run(url: str, renders: int) -> float:
    settings = parse_settings({"issuer": "http://127.0.0.1:1", "database": {"url": url}}, env={})
    ctx = await start_context(settings, time.time)
    now = int(time.time())
    async with ctx.db.begin() as conn:
        for t in range(TREES):
            parent: str | None = None
            for i in range(PER_TREE):
                jti = f"bench-{t}-{i}"
                kind = tokens.GRANT if i == 0 else "exchange"
                holder = "web-app" if i == 0 else AGENTS[i % len(AGENTS)]
                await tokens.record(
                    conn,
                    tokens.TokenRecord(
                        jti=jti, client_id=holder, subject="alice", issued_at=now,
                        expires_at=now + 3600, parent_jti=parent, kind=kind,
                        task=f"task-{t}", actor=holder if i else None, jkt="x" * 43,
                    ),
                )  # fmt: skip
                # A chain with branches: every third node starts from the one before last.
                parent = jti if i % 3 else parent or jti
    spent = []
    for _ in range(renders):
        start = time.process_time()
        async with ctx.db.begin() as conn:
            acting = await acting_now(ctx, conn, "alice", now)
            activity = await recent_activity(conn, "alice")
        html = render("account.html", settings, user_label="alice", consents=[],
                      approvals=[], acting=acting, activity=activity, notice=None,
                      approval_action="", revoke_action="", tokens_action="",
                      logout_action="")  # fmt: skip
        spent.append(time.process_time() - start)
        assert html.body.count(b'name="token"') == TREES * PER_TREE
    await ctx.db.dispose()
    return statistics.median(spent) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        ms = asyncio.run(run(url, args.renders))
    verdict = "meets" if ms <= GOAL_MS else "MISSES"
    print(f"account page, {TREES * PER_TREE} live tokens in {TREES} trees: "
          f"median {ms:.1f} ms server CPU per render "
          f"({verdict} the goal of <= {GOAL_MS:.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
