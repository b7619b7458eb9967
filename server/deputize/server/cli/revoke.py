"""``deputize revoke``: revoke tokens, and everything delegated from them, by one criterion.

It reports the live tokens revoked (not those already expired or revoked) and the spent
hand-offs closed with them; a criterion that matches no live token says so and exits 1, so a
mistyped jti or task is not taken for success.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from deputize.server.cli.common import (
    CommandError,
    config_arg,
    run,
    settings_of,
)
from deputize.server.storage.database import Database
from deputize.server.storage.tokens import Revoked
from deputize.server.tokens.revocation import revoke as revoke_tokens


def cmd_revoke(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    criterion = {
        "jti": args.jti,
        "task": args.task,
        "client_id": args.client,
        "subject": args.user,
    }
    flag, value = next(
        (f"--{name}", getattr(args, name))
        for name in ("jti", "task", "client", "user")
        if getattr(args, name) is not None
    )

    async def action(db: Database) -> Revoked:
        async with db.begin() as conn:
            return await revoke_tokens(conn, int(time.time()), by="cli", **criterion)

    done = run(settings, action)
    if not done.live and not done.spent_handoffs:
        # The attempt is audited all the same (tokens/revocation.py).
        raise CommandError(f"no live token matches {flag} {value}")
    print(
        f"Revoked {done.live} live token(s), including every token delegated from them; "
        f"closed {done.spent_handoffs} spent hand-off(s) with them."
    )
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``revoke``."""
    revoke = commands.add_parser(
        "revoke",
        help="revoke tokens and everything delegated from them",
        description=(
            "Revoke tokens by one criterion.  Every token delegated from a revoked token is "
            "revoked too; introspection and exchanges see it at once."
        ),
    )
    config_arg(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--jti", help="one token, by its jti")
    which.add_argument("--task", help="every token of a task")
    which.add_argument("--client", metavar="CLIENT_ID", help="every token a client holds")
    which.add_argument("--user", metavar="SUB", help="every token acting for a user")
    revoke.set_defaults(func=cmd_revoke)
