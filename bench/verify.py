"""Resource-server verification throughput, beside the raw cost of the crypto it needs.

    .venv/bin/python bench/verify.py              # about 40 seconds
    .venv/bin/python bench/verify.py --seconds 5  # longer runs, steadier figures

One check = what ``deputize.verifier.Verifier.verify`` does for a request: a DPoP-bound access
token carrying a 3-hop delegation chain (alice -> A -> B -> C) and a status list reference, plus
its DPoP proof (with ``ath``): both signatures verified (ES256), every claim, the chain policy,
the scopes, the status list lookup and the replay cache.  Keys and the status list are warm in
their (bounded) caches, as in a running resource server; no network.

The ceiling is the raw cost of the two ES256 verifies alone, with ``cryptography`` directly,
measured in the same run, in slices of 512 checks that alternate with the verifier's; a
round's ratio is the median over its adjacent slice pairs, so load from elsewhere, which both
halves of a pair see, mostly cancels.  The goal is at least 0.74 x that ceiling.  The machine
may be shared and noisy: compare ratios, not absolute figures; ``verify_instructions.sh``
counts instructions per check instead, which load does not move.
"""

from __future__ import annotations

import argparse
import gc
import secrets
import statistics
import time
import zlib
from typing import NamedTuple

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from deputize.keys import SigningKey, create_proof, sign
from deputize.keys._b64 import b64url_encode
from deputize.verifier import ChainPolicy, ReplayCache, Verifier

ISSUER = "https://auth.example.com"
RESOURCE = "https://docs.example.com"
URL = RESOURCE + "/documents/1"
STATUS_URI = ISSUER + "/statuslists/0"


class Ceiling:
    """The crypto ceiling's work: the two ES256 verifies of one check, with ``cryptography``
    directly, on inputs of about the real sizes."""

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.public = key.public_key()
        self.algorithm = ec.ECDSA(hashes.SHA256())
        self.token_input, self.proof_input = b"t" * 700, b"p" * 450
        self.token_sig = key.sign(self.token_input, self.algorithm)
        self.proof_sig = key.sign(self.proof_input, self.algorithm)

    def checks(self, count: int) -> None:
        public, algorithm = self.public, self.algorithm
        for _ in range(count):
            public.verify(self.token_sig, self.token_input, algorithm)
            public.verify(self.proof_sig, self.proof_input, algorithm)


def status_list(key: SigningKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": STATUS_URI, "iat": now, "exp": now + 3600, "ttl": 3600,
        "status_list": {"bits": 1, "lst": b64url_encode(zlib.compress(bytes(1 << 17)))},
    }  # fmt: skip
    return sign(claims, key, typ="statuslist+jwt")


def make_token(as_key: SigningKey, holder: SigningKey, idx: int, now: int | None = None) -> str:
    now = int(time.time()) if now is None else now
    return sign(
        {
            "iss": ISSUER, "sub": "alice", "aud": RESOURCE, "client_id": "agent-c",
            "iat": now, "exp": now + 3600, "jti": secrets.token_urlsafe(24),
            "scope": "docs:read docs:write",
            "act": {"sub": "agent-c", "act": {"sub": "agent-b", "act": {"sub": "agent-a"}}},
            "cnf": {"jkt": holder.kid}, "task": "quarterly-report",
            "status": {"status_list": {"idx": idx, "uri": STATUS_URI}},
        },
        as_key,
        typ="at+jwt",
    )  # fmt: skip


class Setup(NamedTuple):
    verifier: Verifier
    requests: list[tuple[str, str]]
    """(Authorization, DPoP) header pairs, one per check."""
    as_key: SigningKey
    """The issuer's key, which signs the tokens."""
    holder: SigningKey
    """The agent's key, which signs the proofs."""


def setup(count: int, *, distinct: bool, now: float | None = None) -> Setup:
    """The verifier and ``count`` - 1 requests (one more is spent warming it up): a new token
    for every check when ``distinct`` (both signatures verified each time), else one token
    throughout.  With ``now``, tokens, proofs and the verifier's clock share that fixed time
    (``verify_instructions.py``: a slow setup under valgrind must not age the proofs)."""
    as_key, holder = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    listed = status_list(as_key)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=listed))
    verifier = Verifier(
        ISSUER, RESOURCE, jwks={"keys": [as_key.public_jwk()]},
        policy=ChainPolicy(max_depth=4, blocked_actors={"payments-agent"}),
        replay=ReplayCache(max_entries=count + 10), http=httpx.Client(transport=transport),
        clock=time.time if now is None else (lambda: now),
    )  # fmt: skip
    issued_at = None if now is None else int(now)
    shared = make_token(as_key, holder, 0, now=issued_at)
    requests = []
    for i in range(count):
        token = make_token(as_key, holder, i % (1 << 17), now=issued_at) if distinct else shared
        proof = create_proof(holder, "GET", URL, access_token=token, now=now)
        requests.append((f"DPoP {token}", proof))
    # Warm-up: fetches the status list once, loads the proof key into the key cache.
    authorization, proof = requests.pop()
    verifier.verify(
        authorization=authorization, dpop=proof, method="GET", url=URL, scopes=("docs:read",)
    )
    return Setup(verifier, requests, as_key, holder)


#: Checks per slice: the ceiling and the verifier take turns in slices this long (under 0.1 s:
#: long enough that neither disturbs the other's CPU caches, short enough that both see the
#: same load on a shared machine).
SLICE = 512


class Round(NamedTuple):
    ceiling: float
    """The crypto ceiling, checks per second."""
    rate: float
    """The verifier, checks per second."""
    ratio: float
    """The median, over adjacent slice pairs, of verifier / ceiling: a burst of load from
    elsewhere moves a pair or two, not the median."""


def run(seconds: float, *, distinct: bool) -> Round:
    """The ceiling and the verifier, measured in alternating slices for ``seconds``."""
    # Requests are made up front, so making them costs the measurement nothing.
    verifier, requests, _, _ = setup(int(seconds * 9000) + 100, distinct=distinct)
    ceiling = Ceiling()
    scopes = ("docs:read",)
    verify = verifier.verify
    gc.collect()
    ceiling_time = verify_time = 0.0
    ratios = []
    done = 0
    while verify_time < seconds and done + SLICE <= len(requests):
        start = time.perf_counter()
        ceiling.checks(SLICE)
        middle = time.perf_counter()
        for authorization, proof in requests[done : done + SLICE]:
            verify(authorization=authorization, dpop=proof, method="GET", url=URL, scopes=scopes)
        end = time.perf_counter()
        ceiling_time += middle - start
        verify_time += end - middle
        ratios.append((middle - start) / (end - middle))
        done += SLICE
    assert len(verifier.replay) == done + 1  # every proof remembered, none refused
    return Round(done / ceiling_time, done / verify_time, statistics.median(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratios, rates, ceilings, reused = [], [], [], []
    for _ in range(args.rounds):
        cold = run(args.seconds, distinct=True)
        warm = run(args.seconds, distinct=False)
        ceilings.append(cold.ceiling)
        rates.append(cold.rate)
        ratios.append(cold.ratio)
        reused.append(warm.ratio)
        print(
            f"ceiling {cold.ceiling:6.0f}/s | new token each check {cold.rate:6.0f}/s "
            f"= {cold.ratio:.2f} x | same token, new proofs {warm.rate:6.0f}/s "
            f"= {warm.ratio:.2f} x"
        )
    print(
        f"median: ceiling {statistics.median(ceilings):.0f}/s; a new token every check "
        f"{statistics.median(rates):.0f} checks/s = {statistics.median(ratios):.2f} x the ceiling "
        f"(goal >= 0.74); one token, new proofs = {statistics.median(reused):.2f} x"
    )


if __name__ == "__main__":
    main()
