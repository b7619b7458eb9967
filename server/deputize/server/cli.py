"""The ``deputize`` command line: serve, init, check-config, migrate, keys, clients, revoke, audit,
users and consents (``cli_accounts.py``).

Every command takes ``--help``.  Errors name the config key or flag at fault and exit with 2
(usage or configuration) or 1 (the operation was refused).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from deputize.server.client_secrets import MIN_SECRET_LENGTH, generate_secret, hash_secret
from deputize.server.keyring import RotationError, ensure_keys, published, rotate
from deputize.server.revocation import revoke as revoke_tokens
from deputize.server.settings import (
    AUTH_METHODS,
    PUBLIC_CLIENT,
    ClientConfig,
    ConfigError,
    Settings,
    check_agent_scopes,
    load_settings,
    parse_client,
)
from deputize.server.storage import audit
from deputize.server.storage import clients as client_rows
from deputize.server.storage import keys as key_rows
from deputize.server.storage.database import Database

T = TypeVar("T")
DEFAULT_CONFIG = "deputize.yaml"


class CommandError(Exception):
    """A refusal to print for the user (exit status 1)."""


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


async def _with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.async_database_url, pool_size=1)
    try:
        await db.migrate()
        return await action(db)
    finally:
        await db.dispose()


def _run(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    return asyncio.run(_with_db(settings, action))


# --- serve -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from deputize.server import http_head
    from deputize.server.access_log import RedactQuery
    from deputize.server.app import create_app

    settings = _settings(args)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise CommandError(
            f"--host/--port: cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # One line, flushed before start-up work, so scripts (and our tests) can read the address.
    print(f"Deputize listening on http://{shown}:{port} (issuer {settings.issuer})", flush=True)
    issuer = urlsplit(settings.issuer)
    if issuer.hostname in ("127.0.0.1", "localhost", "::1") and issuer.port not in (None, port):
        # Clients sign DPoP proofs for the issuer's URLs: a mismatch here fails every proof.
        print(
            f"deputize: warning: issuer {settings.issuer} names port {issuer.port} but the server "
            f"listens on {port}; set issuer (or DEPUTIZE_ISSUER) to the URL clients use",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(
        create_app(settings),
        http=http_head.protocol(settings.max_header_bytes),
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    # After Config, which configures logging: no whole ID token from a logout URL in the log.
    logging.getLogger("uvicorn.access").addFilter(RedactQuery())
    server = uvicorn.Server(config)
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
        # handler it found.  A stop on request is a success: make that handler exit with 0.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which would otherwise walk it again and again under load.
    gc.collect()
    gc.freeze()
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# --- init / check-config / migrate --------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.output)
    if target.exists() and not args.force:
        raise CommandError(f"{target} exists; pass --force to overwrite it")
    text = (resources.files("deputize.server") / "starter.yaml").read_text(encoding="utf-8")
    if args.issuer:
        text = text.replace("issuer: http://127.0.0.1:8000", f"issuer: {args.issuer}", 1)
    target.write_text(text, encoding="utf-8")
    print(f"Wrote {target}.  Next: deputize serve --config {target}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(f"{args.file}: OK")
    print(f"  issuer            {settings.issuer}")
    print(f"  database          {_redact(settings.database_url)}")
    print(f"  signing algorithm {settings.signing_alg}")
    print(f"  static clients    {len(settings.clients)}")
    print(f"  trusted issuers   {len(settings.trusted_issuers)}")
    return 0


def _redact(url: str) -> str:
    # asyncpg also takes the password as a query parameter (?password=...).
    url = re.sub(r"([?&](?:ssl)?password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
    return url


def cmd_migrate(args: argparse.Namespace) -> int:
    async def noop(db: Database) -> None:
        return None

    _run(_settings(args), noop)
    print("Database schema is up to date.")
    return 0


# --- keys --------------------------------------------------------------------------------------


def cmd_keys_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(db: Database) -> list[key_rows.KeyRow]:
        now = int(time.time())
        async with db.startup_lock() as conn:
            await ensure_keys(conn, settings, now)
            await conn.commit()
        async with db.begin() as conn:
            return await key_rows.load(conn)

    rows = _run(settings, action)
    now = int(time.time())
    shown = {row.kid for row in published(rows, now)}
    if args.json:
        print(json.dumps([_key_json(row, row.kid in shown) for row in rows], indent=2))
        return 0
    print(f"{'KID':<45} {'ALG':<6} {'STATE':<8} {'CREATED':<20} {'IN JWKS UNTIL'}")
    for row in rows:
        until = "-" if row.publish_until is None else _when(row.publish_until)
        if row.state != "retired":
            until = "published"
        elif row.kid not in shown:
            until = "dropped"
        print(f"{row.kid:<45} {row.alg:<6} {row.state:<8} {_when(row.created_at):<20} {until}")
    return 0


def _key_json(row: key_rows.KeyRow, in_jwks: bool) -> dict[str, Any]:
    return {
        "kid": row.kid,
        "alg": row.alg,
        "state": row.state,
        "created_at": row.created_at,
        "activated_at": row.activated_at,
        "retired_at": row.retired_at,
        "publish_until": row.publish_until,
        "in_jwks": in_jwks,
    }


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(db: Database) -> key_rows.KeyRow:
        now = int(time.time())
        async with db.startup_lock() as conn:
            await ensure_keys(conn, settings, now)
            try:
                promoted = await rotate(conn, settings, now, force=args.force)
            except RotationError:
                await conn.rollback()
                raise
            await conn.commit()
            return promoted

    try:
        promoted = _run(settings, action)
    except RotationError as exc:
        raise CommandError(str(exc)) from None
    print(f"Rotated: {promoted.kid} ({promoted.alg}) now signs.")
    print(
        f"Running servers switch within keys.refresh_interval ({settings.key_refresh_interval}s);"
        " the previous key stays in the JWKS until its tokens have expired."
    )
    return 0


# --- clients -----------------------------------------------------------------------------------


def _read_secret_from_stdin() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Client secret: ")
    return sys.stdin.readline().rstrip("\r\n")


def cmd_clients_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
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
    }
    if args.auth_method == PUBLIC_CLIENT:
        pass  # a public client holds no credential
    elif args.auth_method == "private_key_jwt":
        if bool(args.jwks_file) == bool(args.jwks_uri):
            raise CommandError("private_key_jwt needs exactly one of --jwks-file or --jwks-uri")
        if args.jwks_file:
            try:
                data["jwks"] = json.loads(Path(args.jwks_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CommandError(f"--jwks-file: cannot read a JSON JWK Set: {exc}") from None
        else:
            data["jwks_uri"] = args.jwks_uri
    else:
        secret = generate_secret()
        data["client_secret_hash"] = hash_secret(secret)
    client = parse_client(data, "command line", env={})
    check_agent_scopes(client, settings.forbidden_agent_scopes, "command line")

    async def action(db: Database) -> None:
        async with db.begin() as conn:
            await client_rows.add(conn, client, int(time.time()))

    _run(settings, action)
    print(f"Added client {client.client_id} ({client.token_endpoint_auth_method}).")
    if secret is not None:
        print("Client secret (shown once; store it now, Deputize keeps only its hash):")
        print(secret)
    return 0


def cmd_clients_list(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def action(db: Database) -> list[ClientConfig]:
        async with db.begin() as conn:
            return await client_rows.list_all(conn)

    stored = _run(settings, action)
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
    settings = _settings(args)
    for i, client in enumerate(settings.clients):
        if client.client_id == args.client_id:
            raise CommandError(
                f"{args.client_id!r} is defined in {args.config} (clients[{i}]); remove it there"
            )

    async def action(db: Database) -> bool:
        async with db.begin() as conn:
            return await client_rows.remove(conn, args.client_id)

    if not _run(settings, action):
        raise CommandError(f"no client {args.client_id!r} in the database")
    print(f"Removed client {args.client_id}.")
    return 0


# --- revoke and audit --------------------------------------------------------------------------


def cmd_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)
    criterion = {
        "jti": args.jti,
        "task": args.task,
        "client_id": args.client,
        "subject": args.user,
    }

    async def action(db: Database) -> int:
        async with db.begin() as conn:
            return await revoke_tokens(conn, int(time.time()), by="cli", **criterion)

    count = _run(settings, action)
    print(f"Revoked {count} token(s), including every token delegated from them.")
    return 0


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


def cmd_audit(args: argparse.Namespace) -> int:
    settings = _settings(args)

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
                limit=args.limit,
            )

    if args.verify:
        result = _run(settings, verify)
        if args.json:
            print(
                json.dumps(
                    {
                        "ok": result.ok,
                        "entries": result.entries,
                        "problems": result.problems,
                        "heads": result.heads,
                    },
                    indent=2,
                )
            )
        else:
            for problem in result.problems:
                print(f"TAMPERED: {problem}")
            state = "intact" if result.ok else f"{len(result.problems)} problem(s)"
            print(f"Audit trail: {result.entries} entries in {len(result.heads)} chains, {state}.")
        return 0 if result.ok else 1
    entries = _run(settings, query)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        chain = " > ".join([entry["subject"] or "-", *entry["actors"]])
        parts = [
            _when(entry["at"]),
            entry["event"],
            f"client={entry['client_id'] or '-'}",
            f"chain={chain}",
        ]
        for name in ("task", "jti", "parent_jti", "jkt", "reason"):
            if entry[name]:
                parts.append(f"{name}={entry[name]}")
        if entry["details"]:
            parts.append(json.dumps(entry["details"], sort_keys=True))
        print("  ".join(parts))
    if not entries:
        print("No audit entries match.")
    return 0


def cmd_clients_hash_secret(args: argparse.Namespace) -> int:
    if args.generate:
        secret = generate_secret()
        print("Client secret (give it to the client; it is not stored anywhere):")
        print(secret)
    else:
        secret = _read_secret_from_stdin()
        if len(secret) < MIN_SECRET_LENGTH:
            raise CommandError(
                f"client secrets must be at least {MIN_SECRET_LENGTH} characters; "
                "use --generate for a random one"
            )
    print("client_secret_hash for the config file:")
    print(hash_secret(secret))
    return 0


# --- argument parsing --------------------------------------------------------------------------


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deputize",
        description="Deputize: an OAuth 2.1 authorization server for delegating to AI agents.",
        epilog="Start with `deputize init`, then `deputize serve`.  Docs: docs/quickstart.md",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the server", description="Run the server.")
    _config_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (default 8000)"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default info)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    init = commands.add_parser(
        "init",
        help="write a commented starter configuration",
        description="Write a commented starter configuration file.",
    )
    init.add_argument("--output", "-o", default=DEFAULT_CONFIG, metavar="FILE")
    init.add_argument("--issuer", help="issuer URL to put in the file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate a configuration file and print a summary.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=cmd_check_config)

    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Create or upgrade the database schema (serve also does this at start).",
    )
    _config_arg(migrate)
    migrate.set_defaults(func=cmd_migrate)

    keys = commands.add_parser(
        "keys", help="list or rotate signing keys", description="Manage signing keys."
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    key_list = key_commands.add_parser(
        "list", help="list signing keys", description="List signing keys and their states."
    )
    _config_arg(key_list)
    key_list.add_argument("--json", action="store_true", help="print JSON")
    key_list.set_defaults(func=cmd_keys_list)
    key_rotate = key_commands.add_parser(
        "rotate",
        help="promote the next key and retire the active one",
        description=(
            "Promote the published next key to active, retire the active key (it stays in the "
            "JWKS until its tokens expire) and publish a new next key."
        ),
    )
    _config_arg(key_rotate)
    key_rotate.add_argument(
        "--force",
        action="store_true",
        help="rotate even if the next key was published too recently for caches to hold it",
    )
    key_rotate.set_defaults(func=cmd_keys_rotate)

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
    _config_arg(add)
    add.add_argument("--client-id", required=True)
    add.add_argument("--name")
    add.add_argument(
        "--auth-method",
        choices=[*AUTH_METHODS, PUBLIC_CLIENT],
        default="client_secret_basic",
        help="token_endpoint_auth_method (default client_secret_basic; none: a public app)",
    )
    add.add_argument("--jwks-file", help="JSON JWK Set with the client's public keys")
    add.add_argument("--jwks-uri", help="URL of the client's JWK Set")
    add.add_argument(
        "--grant-type",
        action="append",
        help="allowed grant type (repeatable; default client_credentials)",
    )
    add.add_argument(
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
        help="agent the client may hand signed-in users' authority to (repeatable)",
    )
    add.add_argument("--agent", action="store_true", help="the client is an AI agent")
    add.add_argument(
        "--allow-bearer",
        action="store_true",
        help="let the client get unbound bearer tokens (not allowed for agents)",
    )
    add.add_argument(
        "--can-introspect", action="store_true", help="may introspect any token (resource server)"
    )
    add.set_defaults(func=cmd_clients_add)
    list_ = client_commands.add_parser(
        "list", help="list clients", description="List clients from the config and the database."
    )
    _config_arg(list_)
    list_.add_argument("--json", action="store_true", help="print JSON")
    list_.set_defaults(func=cmd_clients_list)
    remove = client_commands.add_parser(
        "remove", help="remove a client", description="Remove a runtime-registered client."
    )
    _config_arg(remove)
    remove.add_argument("client_id", metavar="CLIENT_ID")
    remove.set_defaults(func=cmd_clients_remove)
    hash_secret_ = client_commands.add_parser(
        "hash-secret",
        help="hash a client secret for the config file",
        description=(
            "Read a client secret from standard input (or a prompt) and print the "
            "client_secret_hash value for the config file.  Secrets never go on the command line."
        ),
    )
    hash_secret_.add_argument(
        "--generate", action="store_true", help="generate a new random secret instead of reading"
    )
    hash_secret_.set_defaults(func=cmd_clients_hash_secret)

    revoke = commands.add_parser(
        "revoke",
        help="revoke tokens and everything delegated from them",
        description=(
            "Revoke tokens by one criterion.  Every token delegated from a revoked token is "
            "revoked too; introspection and exchanges see it at once."
        ),
    )
    _config_arg(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--jti", help="one token, by its jti")
    which.add_argument("--task", help="every token of a task")
    which.add_argument("--client", metavar="CLIENT_ID", help="every token a client holds")
    which.add_argument("--user", metavar="SUB", help="every token acting for a user")
    revoke.set_defaults(func=cmd_revoke)

    audit_ = commands.add_parser(
        "audit",
        help="show or verify the audit trail",
        description=(
            "Show audit entries (filters combine) or, with --verify, check every hash chain "
            "and exit 1 if an entry was edited, deleted or reordered."
        ),
    )
    _config_arg(audit_)
    audit_.add_argument("--user", metavar="SUB", help="entries for this user")
    audit_.add_argument("--actor", metavar="CLIENT_ID", help="entries where this client acts")
    audit_.add_argument("--task", help="entries for this task")
    audit_.add_argument(
        "--since", type=_since, metavar="WHEN", help="Unix seconds, ISO date/time, or 15m/2h/7d"
    )
    audit_.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    audit_.add_argument("--json", action="store_true", help="print JSON")
    audit_.add_argument("--verify", action="store_true", help="verify the hash chains")
    audit_.set_defaults(func=cmd_audit)

    from deputize.server import cli_accounts  # imports this module: register after it is built

    cli_accounts.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"deputize: configuration error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"deputize: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
