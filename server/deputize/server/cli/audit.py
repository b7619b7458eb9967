"""``deputize audit``: show, filter and verify the hash-chained audit trail.

Entries are listed in the order they were written, across all chains (``storage/audit.py``),
each with its time to the microsecond; ``--limit`` keeps the newest, ``--jsonl`` prints one
entry per line for log shippers.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from deputize.server.cli.common import (
    config_arg,
    run,
    settings_of,
)
from deputize.server.storage import audit
from deputize.server.storage.database import Database


def _since(value: str) -> int:
    """``--since``: Unix seconds, an ISO date/time (UTC if no zone), or a duration like 15m."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value.isascii() and value[:-1].isdigit() and value[-1] in units:
        return int(time.time()) - int(value[:-1]) * units[value[-1]]
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected Unix seconds, an ISO date (2026-11-22T10:00) or a duration (15m, 2h, 7d); "
            f"got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _event(value: str) -> str:
    """``--event``: one of the event names the server writes."""
    if value not in audit.EVENTS:
        raise argparse.ArgumentTypeError(
            f"unknown event {value!r}; known events: {', '.join(sorted(audit.EVENTS))}"
        )
    return value


def _positive(value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) > 0):
        raise argparse.ArgumentTypeError(f"expected a whole number above 0; got {value!r}")
    return int(value)


def iso_time(entry: dict[str, Any]) -> str:
    """The entry's time as ISO 8601 in UTC: to the microsecond, or to the second for entries
    written before their time was kept more finely (``at_us`` empty)."""
    if entry.get("at_us") is None:
        moment = datetime.fromtimestamp(entry["at"], UTC)
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    seconds, micros = divmod(entry["at_us"], 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def cmd_audit(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def verify(db: Database) -> audit.Verification:
        async with db.begin() as conn:
            return await audit.verify(conn)

    async def query(db: Database) -> list[dict[str, Any]]:
        async with db.begin() as conn:
            return await audit.query(
                conn,
                subject=args.user,
                actor=args.actor,
                task=args.task,
                since=args.since,
                events=args.event or (),
                limit=args.limit,
            )

    if args.verify:
        result = run(settings, verify)
        if args.json or args.jsonl:
            print(
                json.dumps(
                    {
                        "ok": result.ok,
                        "entries": result.entries,
                        "problems": result.problems,
                        "heads": result.heads,
                    },
                    indent=None if args.jsonl else 2,
                )
            )
        else:
            for problem in result.problems:
                print(f"TAMPERED: {problem}")
            state = "intact" if result.ok else f"{len(result.problems)} problem(s)"
            print(f"Audit trail: {result.entries} entries in {len(result.heads)} chains, {state}.")
        return 0 if result.ok else 1
    entries = [{**entry, "time": iso_time(entry)} for entry in run(settings, query)]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if args.jsonl:
        for entry in entries:
            print(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        return 0
    for entry in entries:
        chain = " > ".join([entry["subject"] or "-", *entry["actors"]])
        parts = [
            entry["time"],
            entry["event"],
            f"client={entry['client_id'] or '-'}",
            f"chain={chain}",
        ]
        for name in ("task", "jti", "parent_jti", "jkt", "kid", "reason"):
            if entry[name]:
                parts.append(f"{name}={entry[name]}")
        if entry["details"]:
            parts.append(json.dumps(entry["details"], sort_keys=True))
        print("  ".join(parts))
    if not entries:
        print("No audit entries match.")
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``audit``."""
    audit_ = commands.add_parser(
        "audit",
        help="show or verify the audit trail",
        description=(
            "Show audit entries (filters combine) or, with --verify, check every hash chain "
            "and exit 1 if an entry was edited, deleted or reordered."
        ),
    )
    config_arg(audit_)
    audit_.add_argument("--user", metavar="SUB", help="entries for this user")
    audit_.add_argument("--actor", metavar="CLIENT_ID", help="entries where this client acts")
    audit_.add_argument("--task", help="entries for this task")
    audit_.add_argument(
        "--since", type=_since, metavar="WHEN", help="Unix seconds, ISO date/time, or 15m/2h/7d"
    )
    audit_.add_argument(
        "--event",
        action="append",
        type=_event,
        metavar="KIND",
        help="entries of this kind, e.g. token_revoked (repeatable)",
    )
    audit_.add_argument(
        "--limit",
        type=_positive,
        default=1000,
        help="the newest N matching entries, listed oldest first (default 1000)",
    )
    output = audit_.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON list")
    output.add_argument(
        "--jsonl", action="store_true", help="print one JSON object per line (for log shippers)"
    )
    audit_.add_argument("--verify", action="store_true", help="verify the hash chains")
    audit_.set_defaults(func=cmd_audit)
