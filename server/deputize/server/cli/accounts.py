"""``deputize users`` and ``deputize consents``: people and what they allowed.

Passwords come from a prompt or, with ``--password-stdin``, from standard input; never from
the command line, where other users of the machine and the shell history would see them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
import time
from typing import Any

from deputize.server.accounts import actions as accounts
from deputize.server.accounts.passwords import PasswordPolicyError, hash_password
from deputize.server.cli.common import (
    CommandError,
    UsageError,
    config_arg,
    run,
    settings_of,
    when,
)
from deputize.server.settings import Settings
from deputize.server.storage import consents, users
from deputize.server.storage.database import Database

#: User names are the ``sub`` of their tokens: short, printable, no spaces (they appear in
#: space-separated audit fields and in configuration).
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
_ROLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")


def _username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise argparse.ArgumentTypeError(f"use 1-64 letters, digits and . _ @ + -; got {value!r}")
    return value


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or not value.isprintable() or " " in value:
        raise argparse.ArgumentTypeError(f"expected an e-mail address, got {value!r}")
    if len(value) > 320:
        raise argparse.ArgumentTypeError("e-mail addresses are at most 320 characters")
    return value


def _name(value: str) -> str:
    if not value.strip() or not value.isprintable() or len(value) > 255:
        raise argparse.ArgumentTypeError("expected a printable name of at most 255 characters")
    return value


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the two passwords differ; nothing changed")
    else:
        raise CommandError(
            "no terminal to prompt on: pass --password-stdin and write the password to stdin"
        )
    try:
        return hash_password(password)
    except PasswordPolicyError as exc:
        raise CommandError(f"password refused: {exc}") from None


def cmd_users_add(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    password_hash = _read_password(args)
    now = int(time.time())
    user = users.User(
        sub=args.username,
        password_hash=password_hash,
        name=args.name,
        email=args.email,
        created_at=now,
        password_changed_at=now,
        disabled_at=None,
        roles=_checked_roles(settings, args.role or [], "--role"),
    )

    async def action(db: Database) -> bool:
        async with db.begin() as conn:
            return await accounts.add_user(conn, user, now, by="cli")

    if not run(settings, action):
        raise CommandError(f"USERNAME: {args.username!r} already exists")
    print(f"Added user {args.username}.")
    return 0


def cmd_users_set_password(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    password_hash = _read_password(args)

    async def action(db: Database) -> bool:
        async with db.begin() as conn:
            return await accounts.set_password(
                conn, args.username, password_hash, int(time.time()), by="cli"
            )

    if not run(settings, action):
        raise CommandError(f"USERNAME: no user {args.username!r}")
    print(f"Password of {args.username} changed; their sessions were signed out.")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> int | None:
        async with db.begin() as conn:
            return await accounts.disable_user(conn, args.username, int(time.time()), by="cli")

    count = run(settings, action)
    if count is None:
        raise CommandError(f"USERNAME: no user {args.username!r}")
    print(f"Disabled {args.username}: signed out, {count} token(s) revoked.")
    return 0


def _checked_roles(settings: Settings, roles: list[str], flag: str) -> tuple[str, ...]:
    """Role names as given, each one the policy defines (when there is a policy)."""
    for role in roles:
        if not _ROLE.fullmatch(role):
            raise UsageError(f"{flag}: {role!r} is not a role name")
        if settings.policy is not None and role not in settings.policy.policy.roles:
            known = ", ".join(sorted(settings.policy.policy.roles)) or "none"
            raise UsageError(f"{flag}: the policy defines no role {role!r} (it has: {known})")
    return tuple(dict.fromkeys(roles))


def cmd_users_roles(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    added = _checked_roles(settings, args.add or [], "--add")
    wanted = None if args.set is None else _checked_roles(settings, args.set, "--set")
    removed = set(args.remove or [])
    now = int(time.time())

    async def action(db: Database) -> tuple[tuple[str, ...], int] | None:
        async with db.begin() as conn:
            user = await users.get(conn, args.username)
            if user is None:
                return None
            roles = wanted if wanted is not None else user.roles
            roles = tuple(r for r in dict.fromkeys((*roles, *added)) if r not in removed)
            if roles == user.roles:
                return roles, 0
            count = await accounts.set_roles(conn, args.username, roles, now, by="cli")
            return roles, count or 0

    done = run(settings, action)
    if done is None:
        raise CommandError(f"USERNAME: no user {args.username!r}")
    roles, revoked = done
    print(f"Roles of {args.username}: {', '.join(roles) or '(none)'}.")
    if revoked:
        print(f"A role was taken away: {revoked} token(s) acting for them were revoked.")
    return 0


def cmd_users_enable(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> bool:
        async with db.begin() as conn:
            return await accounts.enable_user(conn, args.username, int(time.time()), by="cli")

    if not run(settings, action):
        raise CommandError(f"USERNAME: no user {args.username!r}")
    print(f"Enabled {args.username}.")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> list[users.User]:
        async with db.begin() as conn:
            return await users.list_all(conn)

    rows = run(settings, action)
    records: list[dict[str, Any]] = [
        {
            "username": u.sub,
            "name": u.name,
            "email": u.email,
            "created_at": u.created_at,
            "disabled_at": u.disabled_at,
            "roles": list(u.roles),
        }
        for u in rows
    ]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not rows:
        print("No users.  Add one with: deputize users add --config FILE USERNAME")
        return 0
    print(f"{'USERNAME':<24} {'STATE':<9} {'CREATED':<23} {'ROLES':<20} {'NAME / EMAIL'}")
    for u in rows:
        state = "active" if u.active else "disabled"
        about = " ".join(x for x in (u.name or "", f"<{u.email}>" if u.email else "") if x)
        roles = ",".join(u.roles) or "-"
        print(f"{u.sub:<24} {state:<9} {when(u.created_at):<23} {roles:<20} {about}".rstrip())
    return 0


def cmd_consents_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> list[consents.Consent]:
        async with db.begin() as conn:
            return await consents.list_all(conn, sub=args.user, include_revoked=args.all)

    rows = run(settings, action)
    if args.json:
        print(json.dumps([_consent_json(c) for c in rows], indent=2))
        return 0
    if not rows:
        print("No consents.")
        return 0
    print(f"{'ID':<33} {'USER':<16} {'CLIENT':<20} {'EXPIRES':<23} {'SCOPES / AGENTS'}")
    for c in rows:
        expires = "revoked" if c.revoked_at is not None else when(c.expires_at)
        agents = f"  agents: {' '.join(c.agents)}" if c.agents else ""
        print(
            f"{c.id:<33} {c.sub:<16} {c.client_id:<20} {expires:<23} {' '.join(c.scopes)}{agents}"
        )
    return 0


def _consent_json(c: consents.Consent) -> dict[str, Any]:
    return {
        "id": c.id,
        "user": c.sub,
        "client_id": c.client_id,
        "scopes": list(c.scopes),
        "agents": list(c.agents),
        "created_at": c.created_at,
        "expires_at": c.expires_at,
        "revoked_at": c.revoked_at,
    }


def cmd_consents_revoke(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> int | None:
        async with db.begin() as conn:
            return await accounts.revoke_consent(conn, args.consent_id, int(time.time()), by="cli")

    count = run(settings, action)
    if count is None:
        raise CommandError(f"CONSENT_ID: no live consent {args.consent_id!r}")
    print(f"Revoked consent {args.consent_id} and {count} token(s) it allowed.")
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``users`` and ``consents`` under the main parser's subcommands."""
    users_ = commands.add_parser(
        "users", help="manage users who sign in", description="Manage users who sign in."
    )
    user_commands = users_.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def password_flag(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (one line) instead of a prompt",
        )

    add = user_commands.add_parser(
        "add",
        help="add a user (asks for the password)",
        description="Add a user.  The user name becomes their `sub` and cannot change.",
    )
    config_arg(add)
    add.add_argument("username", metavar="USERNAME", type=_username)
    add.add_argument("--name", type=_name, help="full name, shown on pages and in the `name` claim")
    add.add_argument("--email", type=_email, help="e-mail address, for the `email` claim")
    add.add_argument(
        "--role", action="append", metavar="ROLE", help="a role of the policy (repeatable)"
    )
    password_flag(add)
    add.set_defaults(func=cmd_users_add)

    roles = user_commands.add_parser(
        "roles",
        help="show or change a user's roles (the delegation policy's)",
        description=(
            "Show or change the roles a user has under the delegation policy (docs/policy.md). "
            "Taking a role away revokes every token acting for the user."
        ),
    )
    config_arg(roles)
    roles.add_argument("username", metavar="USERNAME")
    roles.add_argument("--add", action="append", metavar="ROLE", help="give a role (repeatable)")
    roles.add_argument(
        "--remove", action="append", metavar="ROLE", help="take a role away (repeatable)"
    )
    roles.add_argument("--set", nargs="*", metavar="ROLE", help="exactly these roles")
    roles.set_defaults(func=cmd_users_roles)

    set_password = user_commands.add_parser(
        "set-password",
        help="set a user's password (signs them out everywhere)",
        description="Set a user's password.  Their browser sessions end.",
    )
    config_arg(set_password)
    set_password.add_argument("username", metavar="USERNAME")
    password_flag(set_password)
    set_password.set_defaults(func=cmd_users_set_password)

    disable = user_commands.add_parser(
        "disable",
        help="disable a user: sign-in refused, sessions ended, tokens revoked",
        description=(
            "Disable a user: they cannot sign in, their sessions end, and every token acting "
            "for them (refresh tokens and agents' tokens included) is revoked."
        ),
    )
    config_arg(disable)
    disable.add_argument("username", metavar="USERNAME")
    disable.set_defaults(func=cmd_users_disable)

    enable = user_commands.add_parser(
        "enable", help="let a disabled user sign in again", description="Re-enable a user."
    )
    config_arg(enable)
    enable.add_argument("username", metavar="USERNAME")
    enable.set_defaults(func=cmd_users_enable)

    list_ = user_commands.add_parser("list", help="list users", description="List users.")
    config_arg(list_)
    list_.add_argument("--json", action="store_true", help="print JSON")
    list_.set_defaults(func=cmd_users_list)

    consents_ = commands.add_parser(
        "consents",
        help="list or revoke users' consents",
        description="List or revoke what users allowed clients and agents to do for them.",
    )
    consent_commands = consents_.add_subparsers(
        dest="consents_command", metavar="ACTION", required=True
    )
    c_list = consent_commands.add_parser(
        "list", help="list consents", description="List live consents (--all: revoked too)."
    )
    config_arg(c_list)
    c_list.add_argument("--user", metavar="USERNAME", help="only this user's")
    c_list.add_argument("--all", action="store_true", help="include revoked consents")
    c_list.add_argument("--json", action="store_true", help="print JSON")
    c_list.set_defaults(func=cmd_consents_list)
    c_revoke = consent_commands.add_parser(
        "revoke",
        help="revoke a consent and the tokens it allowed",
        description=(
            "Revoke a consent: the client and the agents it named can no longer act for the "
            "user, and their live tokens for the user (refresh tokens included) are revoked."
        ),
    )
    config_arg(c_revoke)
    c_revoke.add_argument("consent_id", metavar="CONSENT_ID")
    c_revoke.set_defaults(func=cmd_consents_revoke)
