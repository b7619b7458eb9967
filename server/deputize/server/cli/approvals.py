"""``deputize approvals list|approve|deny``: answer agents waiting for a person's approval
(OpenID CIBA), as an operator.  Each answer is audited with ``--by`` (default: ``operator``)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from deputize.server.approvals.answers import AnswerError, answer
from deputize.server.approvals.words import request_in_words
from deputize.server.cli.common import CommandError, config_arg, run, settings_of, when
from deputize.server.storage import approvals
from deputize.server.storage.database import Database


def cmd_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    now = int(time.time())

    async def action(db: Database) -> list[approvals.ApprovalRequest]:
        async with db.begin() as conn:
            return await approvals.pending(conn, now, sub=args.user)

    waiting = run(settings, action)
    if args.json:
        for r in waiting:
            print(json.dumps({
                "id": r.id, "sub": r.sub, "actors": list(r.actors), "client_id": r.client_id,
                "authorization_details": r.authorization_details,
                "binding_message": r.binding_message, "created_at": r.created_at,
                "expires_at": r.expires_at,
            }))  # fmt: skip
        return 0
    if not waiting:
        print("No request is waiting for approval.")
    for r in waiting:
        print(f"{r.id}  {request_in_words(r.actors, r.authorization_details, r.sub)}")
        message = f"; message: {r.binding_message!r}" if r.binding_message else ""
        print(f"    asked {when(r.created_at)}, waits until {when(r.expires_at)}{message}")
    return 0


def _answer(args: argparse.Namespace, approve: bool) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> approvals.ApprovalRequest:
        async with db.begin() as conn:
            return await answer(
                conn, args.id, approve=approve, by=args.by, now=int(time.time()), operator=True
            )

    try:
        done = run(settings, action)
    except AnswerError as exc:
        raise CommandError(str(exc)) from None
    verb = "Approved" if approve else "Denied"
    print(
        f"{verb} {done.id}: {request_in_words(done.actors, done.authorization_details, done.sub)}"
    )
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``approvals``."""
    group = commands.add_parser(
        "approvals",
        help="list and answer requests waiting for a person's approval",
        description="Agents ask a person to approve supervised actions (OpenID CIBA). "
        "List what waits, and approve or deny as an operator (audited).",
    )
    sub = group.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="requests waiting, oldest first")
    config_arg(listing)
    listing.add_argument("--user", metavar="SUB", help="only those acting for this person")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_list)
    for name, approve in (("approve", True), ("deny", False)):
        act = sub.add_parser(name, help=f"{name} a waiting request, as an operator")
        config_arg(act)
        act.add_argument("id", help="the request's id (from `deputize approvals list`)")
        act.add_argument("--by", default="operator", help="who answers, for the audit trail")
        act.set_defaults(func=lambda args, approve=approve: _answer(args, approve))
    return None
