"""``deputize policy``: ask the delegation policy a question, print it, translate another's.

``check`` answers exactly as the server would at ``/decide`` (the same
:func:`deputize.keys.policy.decide`), so an operator can try a rule before a person meets it;
it exits 1 on deny, so scripts can assert on it.  ``show`` prints roles, profiles and rules as
tables.  ``import`` translates a theaios-agent-auth file, refusing what it cannot say exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deputize.keys.policy import Policy, Question, decide
from deputize.server.cli.common import (
    DEFAULT_CONFIG,
    CommandError,
    UsageError,
    run,
    settings_of,
)
from deputize.server.policy.document import load_policy_file
from deputize.server.policy.theaios import TranslationError, translate_file
from deputize.server.storage import users
from deputize.server.storage.database import Database


def _policy(args: argparse.Namespace) -> Policy:
    if args.policy:
        return load_policy_file(Path(args.policy))
    source = settings_of(args).policy
    if source is None:
        raise CommandError(f"{args.config}: has no 'policy' (see docs/policy.md)")
    return source.policy


def _roles(args: argparse.Namespace) -> tuple[str, ...]:
    """``--role`` as given; else the user's roles in the user store of ``--config``."""
    if args.role is not None:
        return tuple(args.role)
    if args.policy:
        raise UsageError("--role: give the person's roles (--policy reads no user store)")
    settings = settings_of(args)

    async def action(db: Database) -> tuple[str, ...] | None:
        async with db.begin() as conn:
            user = await users.get(conn, args.user)
            return None if user is None else user.roles

    roles = run(settings, action)
    if roles is None:
        raise CommandError(f"--user: no user {args.user!r} in the user store (or pass --role)")
    return roles


def cmd_check(args: argparse.Namespace) -> int:
    policy = _policy(args)
    chain = ([args.agent] if args.agent else []) + list(args.via or [])
    if args.via and not args.agent:
        raise UsageError("--via: needs --agent (the agent that handed the work on)")
    now = datetime.now(UTC)
    if args.at:
        try:
            now = datetime.fromisoformat(args.at)
        except ValueError:
            raise UsageError(f"--at: {args.at!r} is not an ISO 8601 time") from None
        if now.tzinfo is None:
            raise UsageError("--at: give a time zone (e.g. 2026-12-07T10:00:00+01:00)")
    details: dict[str, Any] = {}
    if args.details:
        try:
            details = json.loads(args.details)
        except ValueError:
            raise UsageError("--details: not valid JSON") from None
        if not isinstance(details, dict):
            raise UsageError("--details: expected a JSON object")
    question = Question(
        person=args.user,
        roles=_roles(args),
        action=args.action,
        resource=args.resource,
        chain=tuple(chain),
        task=args.task or "",
        details=details,
        now=now,
    )
    decision = decide(policy, question)
    if args.json:
        print(json.dumps(decision.to_json(), indent=2))
    else:
        print(f"decision  {decision.outcome}")
        print(f"tier      {decision.tier}")
        print(f"rule      {decision.rule}")
        print(f"reason    {decision.reason}")
        print(f"policy    {decision.policy}")
    return 1 if decision.outcome == "deny" else 0


def cmd_show(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if args.json:
        print(json.dumps(_as_json(policy), indent=2))
        return 0
    print(f"policy {policy.hash}  (default tier for agents: {policy.default_tier})")
    _table(
        "roles",
        ("role", "permissions (with what it extends)"),
        [(r.name, _perms(r.permissions)) for r in policy.roles.values()],
    )
    _table(
        "agent profiles",
        ("agent", "allow", "deny", "tier", "depth", "hands work to", "takes work from"),
        [
            (
                p.name,
                _perms(p.allow),
                _perms(p.deny),
                p.default_tier or "-",
                str(p.max_depth or "-"),
                ", ".join(sorted(p.delegate_to)) or "-",
                ", ".join(sorted(p.receive_from)) or "-",
            )
            for p in policy.profiles.values()
        ],
    )
    _table(
        "tier rules",
        ("rule", "tier", "permissions"),
        [(t.name, t.tier, _perms(t.permissions)) for t in policy.tiers],
    )
    _table(
        "conditions",
        ("rule", "permissions", "when"),
        [(c.name, _perms(c.permissions), c.condition.source) for c in policy.conditions],
    )
    _table(
        "authorization_details types",
        ("type", "actions", "resource field", "limits"),
        [
            (t.name, ", ".join(sorted(t.actions)), t.resource_field, ", ".join(sorted(t.limits)))
            for t in policy.types.values()
        ],
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        document, notes = translate_file(Path(args.file), namespace=args.namespace)
    except TranslationError as exc:
        raise CommandError(str(exc)) from None
    text = "# Translated by `deputize policy import` from " + args.file + "\n"
    for note in notes:
        text += f"# note: {note}\n"
    text += _yaml(document)
    if args.output:
        out = Path(args.output)
        if out.exists() and not args.force:
            raise UsageError(f"--output: {out} exists; pass --force to overwrite it")
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}; check it with: deputize policy show --policy {out}")
    else:
        sys.stdout.write(text)
    return 0


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100))


def _perms(permissions: Any) -> str:
    return ", ".join(p.text for p in permissions) or "-"


def _table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (none)")
        return
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _as_json(policy: Policy) -> dict[str, Any]:
    return {
        "hash": policy.hash,
        "default_tier": policy.default_tier,
        "roles": {r.name: [p.text for p in r.permissions] for r in policy.roles.values()},
        "profiles": {
            p.name: {
                "allow": [x.text for x in p.allow],
                "deny": [x.text for x in p.deny],
                "default_tier": p.default_tier,
                "max_depth": p.max_depth,
                "delegate_to": sorted(p.delegate_to),
                "receive_from": sorted(p.receive_from),
            }
            for p in policy.profiles.values()
        },
        "tiers": [
            {"name": t.name, "tier": t.tier, "permissions": [p.text for p in t.permissions]}
            for t in policy.tiers
        ],
        "conditions": [
            {
                "name": c.name,
                "permissions": [p.text for p in c.permissions],
                "when": c.condition.source,
            }
            for c in policy.conditions
        ],
    }


def _source_args(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--config",
        "-c",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"configuration file whose 'policy' to use (default: {DEFAULT_CONFIG})",
    )
    which.add_argument("--policy", metavar="FILE", help="a policy file on its own instead")


def add_parsers(commands: Any) -> None:
    """Register ``policy check|show|import``."""
    policy = commands.add_parser(
        "policy",
        help="ask, show or import the delegation policy",
        description="Ask the delegation policy a question, print it, or translate another's.",
        epilog="Docs: docs/policy.md",
    )
    sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)

    check = sub.add_parser(
        "check",
        help="decide one question as the server would (exit 1 on deny)",
        description=(
            "Decide whether AGENT (and the agents it handed work to, --via) may take ACTION on "
            "RESOURCE for USER, as /decide would.  Prints the decision, the tier and the rule "
            "that decided; exits 1 on deny."
        ),
    )
    _source_args(check)
    check.add_argument("--user", required=True, metavar="USERNAME", help="the person")
    check.add_argument(
        "--role",
        action="append",
        metavar="ROLE",
        help="a role of the person (repeatable; default: their roles in the user store)",
    )
    check.add_argument("--agent", metavar="CLIENT_ID", help="the agent acting for the person")
    check.add_argument(
        "--via",
        action="append",
        metavar="CLIENT_ID",
        help="an agent the work was handed on to, in order (repeatable)",
    )
    check.add_argument("--action", required=True, help="the action, e.g. delete")
    check.add_argument("--resource", required=True, help="the resource, e.g. documents:/q3/a.pdf")
    check.add_argument("--task", help="the task id conditions may look at")
    check.add_argument("--details", metavar="JSON", help="the request's details, a JSON object")
    check.add_argument("--at", metavar="TIME", help="decide as at this ISO 8601 time")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=cmd_check)

    show = sub.add_parser(
        "show",
        help="print roles, profiles and rules as tables",
        description="Print the policy's roles, agent profiles, tier rules and conditions.",
    )
    _source_args(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)

    imp = sub.add_parser(
        "import",
        help="translate a theaios-agent-auth YAML file into a Deputize policy",
        description=(
            "Translate a theaios-agent-auth policy (roles, profiles, approval policies, agent-"
            "to-agent rules) into a Deputize policy.  What cannot be translated exactly is "
            "refused with its line; nothing is guessed."
        ),
    )
    imp.add_argument("file", metavar="FILE", help="the theaios-agent-auth YAML file")
    imp.add_argument(
        "--namespace",
        metavar="NAME",
        help="resource namespace for actions that name none (theaios 'read' becomes NAME:read)",
    )
    imp.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    imp.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    imp.set_defaults(func=cmd_import)
