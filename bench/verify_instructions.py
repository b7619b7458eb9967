"""Instructions per verifier check, counted by callgrind: repeatable on a busy machine.

    bench/verify_instructions.sh      # runs this under valgrind three ways and prints the split

Wall-clock figures from ``verify.py`` move with whatever else the machine runs; instruction
counts do not.  This builds ``--count`` requests exactly as ``verify.py`` does for "a new
token every check", then, by ``--mode``:

- ``none``: stops there (the baseline: setup, warm-up, interpreter start);
- ``verify``: runs ``Verifier.verify`` on every request;
- ``crypto``: runs only the two ES256 verifies each check needs, with ``cryptography``
  directly on the same inputs (the ceiling's work).

(verify - none) / count is the cost of a check; (crypto - none) / count is its crypto part.
Tokens, proofs and the verifier's clock share one fixed time, so a slow setup under valgrind
never ages a proof out nor dates a token in the future.
"""

from __future__ import annotations

import argparse
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from verify import URL, setup

from deputize.keys._b64 import b64url_decode


def _der(signature: bytes) -> bytes:
    return encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--mode", choices=("none", "verify", "crypto"), default="verify")
    args = parser.parse_args()
    verifier, requests, as_key, holder = setup(args.count + 1, distinct=True, now=time.time())
    scopes = ("docs:read",)
    # The crypto mode's inputs, prepared here so all three modes do the same setup work.
    algorithm = ec.ECDSA(hashes.SHA256())
    inputs = []
    for authorization, proof in requests:
        for jws in (authorization[5:], proof):
            head, _, sig = jws.rpartition(".")
            inputs.append((_der(b64url_decode(sig)), head.encode("ascii")))
    as_public, holder_public = as_key.public.key, holder.public.key
    assert isinstance(as_public, ec.EllipticCurvePublicKey)
    assert isinstance(holder_public, ec.EllipticCurvePublicKey)

    if args.mode == "verify":
        for authorization, proof in requests:
            verifier.verify(
                authorization=authorization, dpop=proof, method="GET", url=URL, scopes=scopes
            )
    elif args.mode == "crypto":
        for i in range(0, len(inputs), 2):
            as_public.verify(*inputs[i], algorithm)
            holder_public.verify(*inputs[i + 1], algorithm)


if __name__ == "__main__":
    main()
