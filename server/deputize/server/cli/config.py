"""``deputize init`` and ``deputize check-config``: write and validate configuration files."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deputize.server.cli.common import (
    DEFAULT_CONFIG,
    CommandError,
    UsageError,
    config_arg,
    redact,
)
from deputize.server.settings import (
    ConfigError,
    check_issuer,
    load_settings,
)


def _is_development(issuer: str) -> bool:
    """A loopback issuer: nobody but this machine can reach the server (RFC 8252 §8.3)."""
    host = urlsplit(issuer).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.output)
    if target.exists() and not args.force:
        raise CommandError(f"{target} exists; pass --force to overwrite it")
    text = (resources.files("deputize.server") / "starter.yaml").read_text(encoding="utf-8")
    if args.issuer:
        try:  # the rule check-config applies: a file init writes must pass it
            check_issuer(args.issuer, "--issuer")
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        text = text.replace("issuer: http://127.0.0.1:8000", f"issuer: {args.issuer}", 1)
    if _is_development(args.issuer or "http://127.0.0.1:8000"):
        text = text.replace('  mode: "off"', "  mode: open  # a loopback issuer: development", 1)
        text = text.replace(
            "  allow_bearer_for_public_clients: false",
            "  allow_bearer_for_public_clients: true  # development only",
            1,
        )
    if args.resource:
        for resource in args.resource:
            parts = urlsplit(resource)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
                raise UsageError(f"--resource: {resource!r} is not an absolute URL (RFC 8707)")
        text = text.replace(
            "  audiences: []", f"  audiences: {json.dumps(list(args.resource))}", 1
        )  # JSON is YAML: the URLs are quoted
    if args.scope:
        for scope in args.scope:
            if not scope or not scope.isprintable() or " " in scope or '"' in scope:
                raise UsageError(f"--scope: {scope!r} is not a scope token (RFC 6749 §3.3)")
        text = text.replace(
            "  allowed_scopes: []", f"  allowed_scopes: {json.dumps(list(args.scope))}", 1
        )
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--output: cannot write {target}: {exc.strerror}") from None
    print(f"Wrote {target}.  Next: deputize serve --config {target}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        raise UsageError(f"FILE {args.file!r} and --config {args.config!r} differ; pass one")
    file = args.file or args.config or DEFAULT_CONFIG
    settings = load_settings(file)
    print(f"{file}: OK")
    print(f"  issuer            {settings.issuer}")
    print(f"  database          {redact(settings.database_url)}")
    print(f"  signing algorithm {settings.signing_alg}")
    print(f"  static clients    {len(settings.clients)}")
    print(f"  trusted issuers   {len(settings.trusted_issuers)}")
    policy = settings.registration
    bearer = ", bearer for public clients" if policy.allow_bearer_for_public_clients else ""
    print(f"  registration      {policy.mode}{bearer}")
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``init`` and ``check-config``."""
    init = commands.add_parser(
        "init",
        help="write a commented starter configuration",
        description="Write a commented starter configuration file.",
    )
    init.add_argument("--output", "-o", default=DEFAULT_CONFIG, metavar="FILE")
    init.add_argument("--issuer", help="issuer URL to put in the file")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument(
        "--resource",
        action="append",
        metavar="URL",
        help="a resource (RFC 8707) registered clients may get tokens for, such as your MCP "
        "server's URL (repeatable; registration.audiences)",
    )
    init.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="a scope registered clients may ask for, such as your MCP server's "
        "(repeatable; registration.allowed_scopes)",
    )
    init.set_defaults(func=cmd_init)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate a configuration file and print a summary.",
    )
    check.add_argument(
        "file", metavar="FILE", nargs="?", help=f"the same as --config (default: {DEFAULT_CONFIG})"
    )
    config_arg(check, default=None)
    check.set_defaults(func=cmd_check_config)
