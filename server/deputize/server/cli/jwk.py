"""``deputize jwk generate``: a key pair for an agent (or any client), never the server's own.

An agent authenticates with ``private_key_jwt`` (RFC 7523 §2.2): it signs its client assertions
with a private key, and Deputize checks them against the public JWK Set it was registered with
(``deputize clients add --jwks-file``).  Until now a newcomer had to read the source to find
``SigningKey.public_jwk()``; this command writes both halves:

- the private key as an unencrypted PKCS#8 PEM file, readable by its owner only (mode 0600),
  which the agent SDK's ``load_key`` reads;
- the public JWK Set (RFC 7517 §5) on one line, ready for ``--jwks-file``, a ``jwks_uri``
  document or an inline ``jwks:`` in the config file (JSON is YAML);

and prints the key's RFC 7638 thumbprint, which is also its ``kid``.  It touches no database
and no configuration: the server's signing keys are ``deputize keys``' business.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from deputize.keys import SigningKey
from deputize.server.cli.common import CommandError

#: The algorithms a PEM file implies on its own, so the agent SDK's ``load_key`` signs with the
#: very ``alg`` the public JWK Set names: an RSA PEM reads as PS256, so no RS256 here.
ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256")


def _write(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise CommandError(f"{path} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def cmd_jwk_generate(args: argparse.Namespace) -> int:
    private, public = Path(args.private), Path(args.public)
    if private.resolve() == public.resolve():
        raise CommandError("--private and --public must name two different files")
    if not args.force:
        for path in (private, public):
            if path.exists():  # checked for both before either is written
                raise CommandError(f"{path} exists; pass --force to overwrite it")
    key = SigningKey.generate(args.alg)
    jwks = json.dumps({"keys": [key.public_jwk()]}, separators=(",", ":")) + "\n"
    # The private half first, and never left readable by others (O_CREAT's mode, not a chmod
    # after the write).
    _write(private, key.to_pem(), mode=0o600, force=args.force)
    _write(public, jwks.encode("ascii"), mode=0o644, force=args.force)
    print(
        f"Wrote {private} (private key, {args.alg}; keep it secret) and {public} (public JWK Set)."
    )
    print(f"Thumbprint (RFC 7638, also the kid): {key.kid}")
    return 0


def add_parsers(commands: Any) -> None:
    """Register ``jwk generate`` on the top-level subcommands."""
    jwk = commands.add_parser(
        "jwk",
        help="create a key pair for an agent or client",
        description="Create key pairs for clients (not the server's signing keys: see `keys`).",
    )
    jwk_commands = jwk.add_subparsers(dest="jwk_command", metavar="ACTION", required=True)
    generate = jwk_commands.add_parser(
        "generate",
        help="write a private key and its public JWK Set",
        description=(
            "Generate a key pair: the private key as a PEM file (mode 0600) for the agent, the "
            "public JWK Set for `deputize clients add --jwks-file`.  Prints the RFC 7638 "
            "thumbprint."
        ),
    )
    generate.add_argument(
        "--private", required=True, metavar="FILE", help="where to write the private key (PEM)"
    )
    generate.add_argument(
        "--public", required=True, metavar="FILE", help="where to write the public JWK Set"
    )
    generate.add_argument(
        "--alg",
        choices=ALGORITHMS,
        default="ES256",
        help="signing algorithm (default ES256)",
    )
    generate.add_argument("--force", action="store_true", help="overwrite existing files")
    generate.set_defaults(func=cmd_jwk_generate)
