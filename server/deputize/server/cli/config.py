"""``deputize init`` and ``deputize check-config``: write and validate configuration files."""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path
from typing import Any

from deputize.server.cli.common import (
    DEFAULT_CONFIG,
    CommandError,
)
from deputize.server.settings import (
    load_settings,
)


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
    init.set_defaults(func=cmd_init)

    check = commands.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate a configuration file and print a summary.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(func=cmd_check_config)
