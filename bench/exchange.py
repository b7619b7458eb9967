"""Token-exchange throughput and latency, beside the raw cost of the crypto one exchange needs.

    .venv/bin/python bench/exchange.py                 # PostgreSQL at DEPUTIZE_BENCH_POSTGRES_URL
    .venv/bin/python bench/exchange.py --rows 1000000  # also with 10^6 rows in the ledger

What it does, all on this machine:
1. Creates a fresh PostgreSQL database and starts `deputize serve` pinned to one core (core 0).
2. Pre-builds N exchange requests — each with a fresh private_key_jwt assertion and a fresh DPoP
   proof (with ath and the server nonce) — so building them costs the load generator nothing.
3. Measures, in this process, the raw crypto of one exchange: 3 ES256 verifies (client
   assertion, DPoP proof, subject token) + 1 ES256 sign (the new token), with `cryptography`
   directly, just before and just after the load.  Its inverse is the "crypto ceiling" in
   exchanges per second per core.
4. Sends the requests over keep-alive HTTP/1.1 connections on loopback from this process,
   pinned to the other core, and reports exchanges/s, p50 and p99 latency, the ratio to the
   ceiling, and the CPU the server and PostgreSQL spent per exchange.
5. Repeats that --rounds times (3) and reports the medians.  With --rows, a second server with
   its own database, holding that many extra rows in its token ledger, is measured too; the
   two servers' rounds alternate (empty, full, full, empty, ...) so that the machine's drift
   during the run falls on both alike, and the change between the medians is reported.

The load generator is a few lines of asyncio over raw sockets: an HTTP client library would
cost more per request than the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from deputize.keys import SigningKey, create_proof, sign

ROOT = Path(__file__).resolve().parent.parent
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
API = "https://api.example.com"
#: The PostgreSQL server the benchmark database is created on.
POSTGRES = os.environ.get(
    "DEPUTIZE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def crypto_ceiling(seconds: float) -> float:
    """Exchanges per second if one exchange cost only its 3 verifies and 1 sign."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    message = b"x" * 400
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    algorithm = ec.ECDSA(hashes.SHA256())
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            public.verify(signature, message, algorithm)
            public.verify(signature, message, algorithm)
            public.verify(signature, message, algorithm)
            key.sign(message, algorithm)
        count += 50
    return count / elapsed


def machine_ticks() -> tuple[int, int]:
    """All CPU ticks of the machine so far, and those stolen by the hypervisor (Linux
    ``/proc/stat``, first line: user nice system idle iowait irq softirq steal ...)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields), fields[7]


def cpu_seconds(process: Path) -> tuple[float, float]:
    """User and system CPU seconds of the process at ``/proc/PID`` (fields 14 and 15 of its
    ``stat``, counted after the parenthesised command name, which may contain spaces)."""
    fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.token_endpoint = self.issuer + "/token"
        self.auth_key = SigningKey.generate("ES256")
        self.dpop_key = SigningKey.generate("ES256")
        self.idp_key = SigningKey.generate("ES256")
        self.tmp = Path(tempfile.mkdtemp(prefix="deputize-bench-"))
        admin_url = args.postgres
        self.dbname = f"deputize_bench_{secrets.token_hex(4)}"
        self.admin_url = admin_url
        self.db_url = admin_url.rsplit("/", 1)[0] + "/" + self.dbname
        self.server: subprocess.Popen[str] | None = None
        #: What the server command runs under (``exchange_instructions.py``: valgrind), where
        #: its stderr goes, and how long setup requests may take.
        self.launcher: list[str] = []
        #: How Python starts the server's command line (``exchange_instructions.py --cold``
        #: starts it with the decision cache switched off).
        self.entry: list[str] = ["-m", "deputize.server.cli"]
        self.server_stderr: int | None = None
        self.http_timeout = 5.0

    def config(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "database": {"url": self.db_url},
            "tokens": {"access_token_lifetime": 3600},
            "clients": [
                {
                    "client_id": "bench-agent",
                    "agent": True,
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [self.auth_key.public_jwk()]},
                    "grant_types": ["client_credentials", EXCHANGE],
                    "scopes": ["read", "write"],
                    "audiences": [API],
                }
            ],
            "trusted_issuers": [
                {
                    "issuer": "https://idp.bench",
                    "audience": "deputize",
                    "jwks": {"keys": [self.idp_key.public_jwk()]},
                    "roles_claim": "groups",
                    "roles": {"admins": ["admin"]},
                }
            ],
            "delegation": {"grants": [{"subject": "*", "agents": ["bench-agent"]}]},
            **self.policy(),
        }

    def policy(self) -> dict[str, Any]:
        """With ``--policy``: the 75-rule, 5-condition policy of ``policy_fixture.py``, and
        alice an admin through the identity provider's ``groups`` claim."""
        if not getattr(self.args, "policy", False):
            return {}
        from policy_fixture import policy_document

        return {"policy": policy_document()}

    def start_server(self) -> None:
        import yaml

        path = self.tmp / "deputize.yaml"
        path.write_text(yaml.safe_dump(self.config()))
        command = [
            *self.launcher, sys.executable, *self.entry, "serve",
            "--config", str(path), "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        if self.args.server_cpu is not None:
            command = ["taskset", "-c", str(self.args.server_cpu), *command]
        self.server = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.server_stderr, text=True
        )
        assert self.server.stdout is not None
        self.server.stdout.readline()  # "Deputize listening on ..."

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=30)

    # --- requests -------------------------------------------------------------------------

    def assertion(self, now: int) -> str:
        claims = {
            "iss": "bench-agent", "sub": "bench-agent", "aud": self.issuer,
            "iat": now, "exp": now + 240, "jti": secrets.token_urlsafe(12),
        }  # fmt: skip
        return sign(claims, self.auth_key, typ="JWT")

    def post(self, form: dict[str, str], dpop: str) -> bytes:
        body = urlencode(form).encode()
        head = (
            f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"DPoP: {dpop}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def nonce(self) -> str:
        import httpx

        response = httpx.post(
            self.token_endpoint,
            data={"grant_type": "client_credentials"},
            timeout=self.http_timeout,
        )
        return response.headers["DPoP-Nonce"]

    def parent_token(self) -> str:
        """alice -> bench-agent: the delegated token every benchmark request re-exchanges."""
        import httpx

        now = int(time.time())
        user = sign(
            {"iss": "https://idp.bench", "sub": "alice", "aud": "deputize", "iat": now,
             "exp": now + 3600, "groups": ["admins"]},
            self.idp_key, typ="JWT",
        )  # fmt: skip
        form = {
            "grant_type": EXCHANGE, "subject_token": user, "subject_token_type": JWT_TYPE,
            "scope": "read write", "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion(now),
        }  # fmt: skip
        proof = create_proof(self.dpop_key, "POST", self.token_endpoint, nonce=self.nonce())
        response = httpx.post(
            self.token_endpoint, data=form, headers={"DPoP": proof}, timeout=self.http_timeout
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def build(self, count: int, parent: str) -> list[bytes]:
        nonce, now = self.nonce(), int(time.time())
        requests = []
        for _ in range(count):
            form = {
                "grant_type": EXCHANGE, "subject_token": parent, "subject_token_type": ACCESS_TOKEN,
                "scope": "read", "client_assertion_type": JWT_BEARER,
                "client_assertion": self.assertion(now),
            }  # fmt: skip
            proof = create_proof(
                self.dpop_key, "POST", self.token_endpoint, nonce=nonce, access_token=parent,
                now=now,
            )  # fmt: skip
            requests.append(self.post(form, proof))
        return requests

    # --- load ----------------------------------------------------------------------------

    async def load(self, requests: list[bytes]) -> dict[str, Any]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        queue = iter(requests)

        async def worker() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                for request in queue:
                    start = time.perf_counter()
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    await reader.readexactly(length)
                    latencies.append(time.perf_counter() - start)
                    statuses[status] = statuses.get(status, 0) + 1
            finally:
                writer.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.args.connections)))
        elapsed = time.perf_counter() - start
        latencies.sort()
        return {
            "requests": len(latencies),
            "statuses": statuses,
            "per_second": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        }

    async def add_rows(self, rows: int) -> None:
        conn = await asyncpg.connect(self.db_url.replace("postgresql://", "postgresql://", 1))
        try:
            now = int(time.time())
            await conn.execute(
                """INSERT INTO issued_tokens (jti, client_id, subject, parent_jti, jkt, issued_at,
                       expires_at, kind, task, actor)
                   SELECT 'bench-' || g, 'bench-agent', 'user-' || (g % 10000), NULL, 'x',
                          $1::bigint, $1::bigint + 86400, 'delegation', 'task-' || (g % 1000),
                          'bench-agent'
                   FROM generate_series(1, $2::int) AS g""",
                now, rows,
            )  # fmt: skip
            # A ledger that grew to this size over time, not one just bulk-loaded: statistics
            # current, hint bits set, and the load's dirty pages already written out, so no
            # checkpoint of the load lands in the measurement.
            await conn.execute("VACUUM ANALYZE issued_tokens")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    def server_cpu(self) -> tuple[float, float]:
        """User and system CPU seconds the server process has used so far (Linux)."""
        assert self.server is not None
        return cpu_seconds(Path(f"/proc/{self.server.pid}"))

    def postgres_cpu(self) -> dict[int, float]:
        """CPU seconds used so far by each PostgreSQL backend serving the benchmark database
        (their process titles name it; Linux)."""
        used = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if self.dbname.encode() not in (entry / "cmdline").read_bytes():
                    continue
                user, system = cpu_seconds(entry)
            except OSError:
                continue
            used[int(entry.name)] = user + system
        return used

    def round(self, parent: str, label: str) -> dict[str, Any]:
        requests = self.build(self.args.warmup, parent)
        asyncio.run(self.load(requests))
        requests = self.build(self.args.requests, parent)
        # The ceiling just before and just after the load: on a shared machine the speed of a
        # core drifts, and a ratio is only fair within the same stretch of time.
        ceilings = [crypto_ceiling(1.0)]
        user0, sys0 = self.server_cpu()
        pg0 = self.postgres_cpu()
        ticks0, stolen0 = machine_ticks()
        result = asyncio.run(self.load(requests))
        ticks1, stolen1 = machine_ticks()
        user1, sys1 = self.server_cpu()
        pg1 = self.postgres_cpu()
        # Time the hypervisor gave to other guests while we were loaded: on a shared host,
        # a round with much of it measures the neighbours as much as the server.
        result["steal"] = (stolen1 - stolen0) / max(1, ticks1 - ticks0)
        ceilings.append(crypto_ceiling(1.0))
        result["ceiling"] = statistics.mean(ceilings)
        result["ratio"] = result["per_second"] / result["ceiling"]
        result["label"] = label
        # CPU the server spent per exchange: unlike exchanges/s, it does not depend on how
        # busy the rest of the machine (PostgreSQL, the load generator) keeps the cores.
        result["server_user_ms"] = 1000 * (user1 - user0) / len(requests)
        result["server_sys_ms"] = 1000 * (sys1 - sys0) / len(requests)
        pg_used = sum(used - pg0.get(pid, 0.0) for pid, used in pg1.items())
        result["postgres_ms"] = 1000 * pg_used / len(requests)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres",
        default=POSTGRES,
        help="an existing PostgreSQL database to create the benchmark database from",
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per ledger size (medians are reported)"
    )
    parser.add_argument(
        "--rows", type=int, default=0, help="also measure with this many ledger rows"
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="core to pin the server to")
    parser.add_argument("--client-cpu", type=int, default=1, help="core to pin this process to")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})

    # One server per ledger size, each with its own database, both started up front; their
    # rounds alternate (A B B A ...) so that the machine's drift over the run falls on both
    # sizes alike instead of passing for an effect of the ledger.  The idle server sleeps.
    labels = ["empty ledger", f"{args.rows:,} ledger rows"][: 2 if args.rows else 1]
    benches = [Bench(args) for _ in labels]
    for bench in benches:
        asyncio.run(admin(args.postgres, f'CREATE DATABASE "{bench.dbname}"'))
    results: list[dict[str, Any]] = []
    try:
        parents = []
        for bench in benches:
            bench.start_server()
            parents.append(bench.parent_token())
        if args.rows:
            asyncio.run(benches[1].add_rows(args.rows))
        for number in range(args.rounds):
            order = list(zip(benches, parents, labels, strict=True))
            for bench, parent, label in order[:: -1 if number % 2 else 1]:
                results.append(bench.round(parent, label))
    finally:
        for bench in benches:
            bench.stop_server()
            drop = f'DROP DATABASE IF EXISTS "{bench.dbname}" WITH (FORCE)'
            asyncio.run(admin(args.postgres, drop))
    report = {"connections": args.connections, "rounds": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for r in results:
        print(
            f"{r['label']:>24}: {r['per_second']:,.0f} exchanges/s, ceiling "
            f"{r['ceiling']:,.0f}/s (3 ES256 verifies + 1 sign) -> {r['ratio']:.2f} x ceiling; "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, statuses {r['statuses']}; "
            f"CPU per exchange: server {r['server_user_ms'] + r['server_sys_ms']:.2f} ms, "
            f"PostgreSQL {r['postgres_ms']:.2f} ms; stolen by the hypervisor {r['steal']:.0%}"
        )
    medians = {}
    for label in dict.fromkeys(r["label"] for r in results):
        mine = [r for r in results if r["label"] == label]
        medians[label] = statistics.median(r["ratio"] for r in mine)
        print(
            f"{'median, ' + label:>32}: {medians[label]:.2f} x ceiling, "
            f"{statistics.median(r['per_second'] for r in mine):,.0f} exchanges/s, "
            f"p99 {statistics.median(r['p99_ms'] for r in mine):.1f} ms"
        )
    if len(medians) == 2:
        empty, full = medians.values()
        print(f"{'change (ratio to the ceiling)':>32}: {full / empty - 1:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
