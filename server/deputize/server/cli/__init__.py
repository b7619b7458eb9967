"""The ``deputize`` command line, one module per command group: ``serve`` (serve, migrate),
``config`` (init, check-config), ``keys``, ``clients``, ``revoke``, ``audit``, ``accounts``
(users, consents) and ``policy``; ``common`` holds what they share.

Every command takes ``--help``.  Errors name the config key or flag at fault and exit with 2
(usage or configuration) or 1 (the operation was refused).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from deputize.server.cli import (
    accounts,
    approvals,
    audit,
    clients,
    config,
    jwk,
    keys,
    policy,
    revoke,
    serve,
)
from deputize.server.cli.common import CommandError, DatabaseUnavailable, UsageError
from deputize.server.settings import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deputize",
        description="Deputize: an OAuth 2.1 authorization server for delegating to AI agents.",
        epilog="Start with `deputize init`, then `deputize serve`.  Docs: docs/quickstart.md",
    )
    parser.add_argument("--version", action="version", version=f"deputize {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for group in (
        serve,
        config,
        keys,
        jwk,
        clients,
        revoke,
        audit,
        accounts,
        policy,
        approvals,
    ):
        group.add_parsers(commands)
    return parser


def _version() -> str:
    """The installed distribution's version; a bare checkout (run from ``PYTHONPATH``, never
    installed) has none to report, and says so rather than failing."""
    try:
        return metadata.version("deputize")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"deputize: configuration error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"deputize: {exc}", file=sys.stderr)
        return 2
    except (CommandError, DatabaseUnavailable) as exc:
        print(f"deputize: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result
