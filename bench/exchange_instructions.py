"""Instructions the server spends per token exchange, counted by callgrind: repeatable on a
busy machine, where exchanges/s from ``exchange.py`` move by tens of per cent.

    .venv/bin/python bench/exchange_instructions.py            # ~1 minute
    .venv/bin/python bench/exchange_instructions.py --policy   # with a delegation policy
    .venv/bin/python bench/exchange_instructions.py --policy --cold   # every question new

It starts ``deputize serve`` under ``valgrind --tool=callgrind`` with instrumentation off,
against a throwaway PostgreSQL database (as ``exchange.py`` does), warms it up, then counts
only while ``--requests`` full exchanges are served over ``--connections`` connections, and
prints the total and the part spent in ``cryptography``'s ECDSA verify and sign (the rest is
ours: HTTP, framework, JOSE parsing, the grant, minting, the group commit).

Needs ``valgrind`` and ``callgrind_control`` (Debian package ``valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from exchange import POSTGRES, Bench, admin

#: ``--cold``: the server with the policy's decision cache off (nothing is remembered), so
#: every exchange decides as an exchange asking a question for the first time does.
_COLD = (
    "import runpy, sys, deputize.keys.policy; "
    "sys.modules['deputize.keys.policy.decide']._cache_key = lambda policy, q: None; "
    "runpy.run_module('deputize.server.cli', run_name='__main__', alter_sys=True)"
)

#: The entry points of the ECDSA work in cryptography's Rust extension, in callgrind's output.
_CRYPTO = re.compile(r"ECPublicKey>::__pymethod_verify__|ECPrivateKey>::__pymethod_sign__")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"exchange_instructions: {name} not found (Debian package valgrind)")
    return path


def _control(*args: str) -> None:
    subprocess.run([_tool("callgrind_control"), *args], check=True, capture_output=True)


def _inclusive(out: Path) -> tuple[int, int]:
    """Total instructions while counting, and those under the ECDSA entry points."""
    files = sorted(out.glob("callgrind.out*"), key=lambda p: p.stat().st_size)
    annotated = subprocess.run(
        [_tool("callgrind_annotate"), "--inclusive=yes", "--threshold=100", str(files[-1])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = crypto = 0
    for line in annotated.splitlines():
        fields = line.split()
        if not fields or not fields[0][0].isdigit():
            continue
        count = int(fields[0].replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = count
        elif _CRYPTO.search(line):
            crypto += count
    return total, crypto


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--policy",
        action="store_true",
        help="serve with the 75-rule, 5-condition delegation policy of policy_fixture.py",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="with --policy: switch the decision cache off, so every question is decided anew",
    )
    args = parser.parse_args()
    args.server_cpu = None
    args.out = Path(tempfile.mkdtemp(prefix="deputize-callgrind-"))

    bench = Bench(args)
    bench.launcher = [
        _tool("valgrind"), "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={args.out}/callgrind.out",
    ]  # fmt: skip
    if args.cold:
        bench.entry = ["-c", _COLD]
    bench.server_stderr = subprocess.DEVNULL  # valgrind's own messages
    bench.http_timeout = 120.0  # under valgrind the server is ~50x slower
    asyncio.run(admin(args.postgres, f'CREATE DATABASE "{bench.dbname}"'))
    try:
        bench.start_server()
        assert bench.server is not None
        parent = bench.parent_token()
        asyncio.run(bench.load(bench.build(100, parent)))  # warm-up, not counted
        requests = bench.build(args.requests, parent)
        _control("-i", "on", str(bench.server.pid))
        result = asyncio.run(bench.load(requests))
        _control("-i", "off", str(bench.server.pid))
        _control("-d", str(bench.server.pid))
    finally:
        bench.stop_server()
        asyncio.run(admin(args.postgres, f'DROP DATABASE IF EXISTS "{bench.dbname}" WITH (FORCE)'))
    if result["statuses"] != {200: args.requests}:
        print(f"unexpected statuses: {result['statuses']}", file=sys.stderr)
        return 1
    total, crypto = _inclusive(args.out)
    n = args.requests
    print(
        f"instructions per exchange ({n} exchanges, {args.connections} connections): "
        f"total {total // n:,}, ECDSA {crypto // n:,}, the rest {(total - crypto) // n:,}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
