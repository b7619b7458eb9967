"""``deputize serve`` and ``deputize migrate``: run the server, or bring its schema up to date."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from deputize.server.cli.common import (
    CommandError,
    config_arg,
    run,
    settings_of,
)
from deputize.server.storage.database import Database


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from deputize.server.app import create_app
    from deputize.server.http import head as http_head
    from deputize.server.http.access_log import RedactQuery

    settings = settings_of(args)
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
    # The database first, in one line if it cannot be used (database.url and the cause), before
    # uvicorn, whose start-up failure is a traceback in the log and exit status 3.
    run(settings, _migrated)
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
    # One line, flushed once the app has started, so scripts (and our tests) can read the
    # address and use it at once; requests sent before wait in the listen backlog.
    line = f"Deputize listening on http://{shown}:{port} (issuer {settings.issuer})"

    class AnnouncingServer(uvicorn.Server):
        """uvicorn's server, printing ``line`` once it serves: after the app's start-up
        (migrations, keys, secrets), not when the socket is bound."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(line, flush=True)

    server = AnnouncingServer(config)
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


async def _migrated(db: Database) -> None:
    """Nothing more: :func:`run` has connected and migrated by the time it calls this."""


def _port(value: str) -> int:
    """A TCP port number, refused by argparse (naming ``--port``) rather than by the kernel."""
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return port


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def cmd_migrate(args: argparse.Namespace) -> int:
    async def noop(db: Database) -> None:
        return None

    run(settings_of(args), noop)
    print("Database schema is up to date.")
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``serve`` and ``migrate``."""
    serve = commands.add_parser("serve", help="run the server", description="Run the server.")
    config_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to bind; 0 picks a free one (default 8000)"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default info)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the database schema",
        description="Create or upgrade the database schema (serve also does this at start).",
    )
    config_arg(migrate)
    migrate.set_defaults(func=cmd_migrate)
