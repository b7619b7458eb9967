"""``deputize keys``: list and rotate the server's signing keys."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from deputize.server.cli.common import (
    CommandError,
    config_arg,
    run,
    settings_of,
    when,
)
from deputize.server.keyring import RotationError, ensure_keys, published, rotate
from deputize.server.storage import keys as key_rows
from deputize.server.storage.database import Database


def cmd_keys_list(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def action(db: Database) -> list[key_rows.KeyRow]:
        now = int(time.time())
        async with db.startup_lock() as conn:
            await ensure_keys(conn, settings, now)
            await conn.commit()
        async with db.begin() as conn:
            return await key_rows.load(conn)

    rows = run(settings, action)
    now = int(time.time())
    shown = {row.kid for row in published(rows, now)}
    if args.json:
        print(json.dumps([_key_json(row, row.kid in shown) for row in rows], indent=2))
        return 0
    print(f"{'KID':<45} {'ALG':<6} {'STATE':<8} {'CREATED':<23} {'IN JWKS UNTIL'}")
    for row in rows:
        until = "-" if row.publish_until is None else when(row.publish_until)
        if row.state != "retired":
            until = "published"
        elif row.kid not in shown:
            until = "dropped"
        print(f"{row.kid:<45} {row.alg:<6} {row.state:<8} {when(row.created_at):<23} {until}")
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


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = settings_of(args)

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
        promoted = run(settings, action)
    except RotationError as exc:
        raise CommandError(str(exc)) from None
    print(f"Rotated: {promoted.kid} ({promoted.alg}) now signs.")
    print(
        f"Running servers switch within keys.refresh_interval ({settings.key_refresh_interval}s);"
        " the previous key stays in the JWKS until its tokens have expired."
    )
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``keys list|rotate``."""
    keys = commands.add_parser(
        "keys", help="list or rotate signing keys", description="Manage signing keys."
    )
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    key_list = key_commands.add_parser(
        "list", help="list signing keys", description="List signing keys and their states."
    )
    config_arg(key_list)
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
    config_arg(key_rotate)
    key_rotate.add_argument(
        "--force",
        action="store_true",
        help="rotate even if the next key was published too recently for caches to hold it",
    )
    key_rotate.set_defaults(func=cmd_keys_rotate)
