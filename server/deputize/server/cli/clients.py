"""``deputize clients``: register, list and remove clients, and hash secrets for the config file."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.cli.common import (
    CommandError,
    UsageError,
    config_arg,
    run,
    settings_of,
)
from deputize.server.clients.secrets import MIN_SECRET_LENGTH, generate_secret, hash_secret
from deputize.server.settings import (
    AUTH_METHODS,
    GRANT_TYPES,
    PUBLIC_CLIENT,
    ClientConfig,
    ConfigError,
    Settings,
    check_agent_scopes,
    parse_client,
)
from deputize.server.storage import clients as client_rows
from deputize.server.storage.database import Database


def _read_secret_from_stdin() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Client secret: ")
    return sys.stdin.readline().rstrip("\r\n")


#: ``clients add`` builds a client as the config file would have it and validates it with the
#: same code; its errors name config keys, which the user did not type.  Each key is the flag
#: that set it (``scopes`` -> ``--scope``), in this one place.
_COMMAND_LINE = "command line"
_FLAGS = {
    "client_id": "--client-id",
    "name": "--name",
    "token_endpoint_auth_method": "--auth-method",
    "jwks": "--jwks-file",
    "jwks_uri": "--jwks-uri",
    "grant_types": "--grant-type",
    "scopes": "--scope",
    "audiences": "--audience",
    "redirect_uris": "--redirect-uri",
    "post_logout_redirect_uris": "--post-logout-redirect-uri",
    "delegate_agents": "--delegate-agent",
    "agent": "--agent",
    "can_introspect": "--can-introspect",
}
#: Keys whose flag says the opposite (``--allow-bearer`` sets the key to false), or that appear
#: inside a message rather than at its head.
_PHRASES = {
    f"{_COMMAND_LINE}.dpop_bound_access_tokens: must be true": "--allow-bearer: not allowed",
    "(agent: true)": "(--agent)",
    "a public client (none)": "a public client (--auth-method none)",
}


def flag_error(exc: ConfigError) -> UsageError:
    """The same refusal as ``exc``, naming the flags of ``clients add`` instead of config keys."""
    message = str(exc)
    for phrase, flag in _PHRASES.items():
        message = message.replace(phrase, flag)
    message = re.sub(
        rf"{_COMMAND_LINE}\.(\w+)", lambda m: _FLAGS.get(m[1], f"--{m[1]}"), message
    ).removeprefix(f"{_COMMAND_LINE}: ")
    return UsageError(message)


def cmd_clients_add(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.client_id in {c.client_id for c in settings.clients}:
        raise CommandError(f"--client-id: {args.client_id!r} is already defined in {args.config}")
    secret: str | None = None
    data: dict[str, Any] = {
        "client_id": args.client_id,
        "name": args.name,
        "token_endpoint_auth_method": args.auth_method,
        "grant_types": [] if args.no_grant_types else (args.grant_type or ["client_credentials"]),
        "scopes": args.scope or [],
        "audiences": args.audience or [],
        "dpop_bound_access_tokens": not args.allow_bearer,
        "agent": args.agent,
        "can_introspect": args.can_introspect,
        "redirect_uris": args.redirect_uri or [],
        "post_logout_redirect_uris": args.post_logout_redirect_uri or [],
        "delegate_agents": args.delegate_agent or [],
        "require_pushed_authorization_requests": args.require_par,
    }
    if args.auth_method == "private_key_jwt":
        if not args.jwks_file and not args.jwks_uri:
            raise CommandError("private_key_jwt needs exactly one of --jwks-file or --jwks-uri")
        if args.jwks_file:
            try:
                data["jwks"] = json.loads(Path(args.jwks_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CommandError(f"--jwks-file: cannot read a JSON JWK Set: {exc}") from None
        else:
            data["jwks_uri"] = args.jwks_uri
    elif args.jwks_file or args.jwks_uri:
        flag = "--jwks-file" if args.jwks_file else "--jwks-uri"
        raise UsageError(f"{flag}: only for --auth-method private_key_jwt")
    elif args.auth_method != PUBLIC_CLIENT:  # a public client holds no credential
        secret = generate_secret()
        data["client_secret_hash"] = hash_secret(secret)
    try:
        client = parse_client(data, _COMMAND_LINE, env={})
        check_agent_scopes(client, settings.forbidden_agent_scopes, _COMMAND_LINE)
    except ConfigError as exc:
        raise flag_error(exc) from None

    async def action(db: Database) -> None:
        async with db.begin() as conn:
            await _check_delegate_agents(conn, settings, client)
            try:
                await client_rows.add(conn, client, int(time.time()), by="cli")
            except ConfigError:
                raise CommandError(
                    f"--client-id: {client.client_id!r} is already registered"
                ) from None

    run(settings, action)
    print(f"Added client {client.client_id} ({client.token_endpoint_auth_method}).")
    if secret is not None:
        print("Client secret (shown once; store it now, Deputize keeps only its hash):")
        print(secret)
    return 0


async def _check_delegate_agents(
    conn: AsyncConnection, settings: Settings, client: ClientConfig
) -> None:
    """Each ``--delegate-agent`` must name an agent client, from the config or the database:
    a typo would put a name on the consent page that no token exchange can ever match."""
    configured = {c.client_id: c for c in settings.clients}
    for agent_id in client.delegate_agents:
        agent = configured.get(agent_id) or await client_rows.get(conn, agent_id)
        if agent is None:
            raise UsageError(
                f"--delegate-agent: no client {agent_id!r} in the config or the database"
            )
        if not agent.agent:
            raise UsageError(f"--delegate-agent: {agent_id!r} is not an agent (agent: true)")


def cmd_clients_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> list[ClientConfig]:
        async with db.begin() as conn:
            return await client_rows.list_all(conn)

    stored = run(settings, action)
    rows = [(c, "config") for c in settings.clients] + [(c, "database") for c in stored]
    if args.json:
        print(json.dumps([{**c.to_record(), "source": src} for c, src in rows], indent=2))
        return 0
    if not rows:
        print("No clients.  Add one with: deputize clients add --config FILE --client-id ID")
        return 0
    print(f"{'CLIENT ID':<32} {'SOURCE':<9} {'AUTH METHOD':<20} {'DPOP':<5} {'SCOPES'}")
    for c, src in rows:
        dpop = "yes" if c.dpop_bound_access_tokens else "no"
        print(
            f"{c.client_id:<32} {src:<9} {c.token_endpoint_auth_method:<20} {dpop:<5} "
            f"{' '.join(c.scopes)}"
        )
    return 0


def cmd_clients_remove(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    for i, client in enumerate(settings.clients):
        if client.client_id == args.client_id:
            raise CommandError(
                f"{args.client_id!r} is defined in {args.config} (clients[{i}]); remove it there"
            )

    async def action(db: Database) -> bool:
        async with db.begin() as conn:
            return await client_rows.remove(conn, args.client_id, int(time.time()), by="cli")

    if not run(settings, action):
        raise CommandError(f"no client {args.client_id!r} in the database")
    print(f"Removed client {args.client_id}.")
    return 0


def cmd_clients_hash_secret(args: argparse.Namespace) -> int:
    # Piped (`... | tee hash.txt`), standard output carries the hash alone, for a script to
    # take; the words around it, and a generated secret meant for a person, go to stderr.
    human = sys.stdout if sys.stdout.isatty() else sys.stderr
    if args.generate:
        secret = generate_secret()
        print("Client secret (give it to the client; it is not stored anywhere):", file=human)
        print(secret, file=human)
    else:
        secret = _read_secret_from_stdin()
        if len(secret) < MIN_SECRET_LENGTH:
            raise CommandError(
                f"client secrets must be at least {MIN_SECRET_LENGTH} characters; "
                "use --generate for a random one"
            )
    print("client_secret_hash for the config file:", file=human, flush=True)
    print(hash_secret(secret))
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``clients add|list|remove|hash-secret``."""
    clients = commands.add_parser(
        "clients", help="manage clients", description="Manage runtime-registered clients."
    )
    client_commands = clients.add_subparsers(
        dest="clients_command", metavar="ACTION", required=True
    )
    add = client_commands.add_parser(
        "add",
        help="register a client (prints a generated secret once)",
        description="Register a client in the database.  Secrets are generated and shown once.",
    )
    config_arg(add)
    add.add_argument("--client-id", required=True)
    add.add_argument("--name")
    add.add_argument(
        "--auth-method",
        choices=[*AUTH_METHODS, PUBLIC_CLIENT],
        default="client_secret_basic",
        help="token_endpoint_auth_method (default client_secret_basic; none: a public app)",
    )
    keys = add.add_mutually_exclusive_group()
    keys.add_argument("--jwks-file", help="JSON JWK Set with the client's public keys")
    keys.add_argument("--jwks-uri", help="URL of the client's JWK Set")
    grants = add.add_mutually_exclusive_group()
    grants.add_argument(
        "--grant-type",
        action="append",
        choices=GRANT_TYPES,
        metavar="GRANT_TYPE",
        help="allowed grant type (repeatable; default client_credentials)",
    )
    grants.add_argument(
        "--no-grant-types",
        action="store_true",
        help="no grant at all: a resource server that only introspects",
    )
    add.add_argument("--scope", action="append", help="allowed scope (repeatable)")
    add.add_argument("--audience", action="append", help="allowed resource URI (repeatable)")
    add.add_argument("--redirect-uri", action="append", help="sign-in redirect URI (repeatable)")
    add.add_argument(
        "--post-logout-redirect-uri", action="append", help="sign-out redirect URI (repeatable)"
    )
    add.add_argument(
        "--delegate-agent",
        action="append",
        metavar="CLIENT_ID",
        help="agent client the client may hand signed-in users' authority to (repeatable)",
    )
    holder = add.add_mutually_exclusive_group()
    holder.add_argument("--agent", action="store_true", help="the client is an AI agent")
    holder.add_argument(
        "--allow-bearer",
        action="store_true",
        help="let the client get unbound bearer tokens (not allowed for agents)",
    )
    add.add_argument(
        "--can-introspect", action="store_true", help="may introspect any token (resource server)"
    )
    add.add_argument(
        "--require-par",
        action="store_true",
        help="sign-in requests only through /par (RFC 9126 require_pushed_authorization_requests)",
    )
    add.set_defaults(func=cmd_clients_add)
    list_ = client_commands.add_parser(
        "list", help="list clients", description="List clients from the config and the database."
    )
    config_arg(list_)
    list_.add_argument("--json", action="store_true", help="print JSON")
    list_.set_defaults(func=cmd_clients_list)
    remove = client_commands.add_parser(
        "remove", help="remove a client", description="Remove a runtime-registered client."
    )
    config_arg(remove)
    remove.add_argument("client_id", metavar="CLIENT_ID")
    remove.set_defaults(func=cmd_clients_remove)
    hash_secret_ = client_commands.add_parser(
        "hash-secret",
        help="hash a client secret for the config file",
        description=(
            "Read a client secret from standard input (or a prompt) and print the "
            "client_secret_hash value for the config file.  Secrets never go on the command line. "
            "When standard output is not a terminal it carries the hash alone; the rest (with "
            "--generate, the new secret too) goes to standard error."
        ),
    )
    hash_secret_.add_argument(
        "--generate", action="store_true", help="generate a new random secret instead of reading"
    )
    hash_secret_.set_defaults(func=cmd_clients_hash_secret)
