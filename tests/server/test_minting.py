"""Ledger keys: unguessable, and minted in time order so new rows stay on a few index pages."""

from __future__ import annotations

import base64
import time

from deputize.server.tokens.minting import new_jti


def test_jti_is_the_time_then_144_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    jtis = [new_jti() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(jtis)) == len(jtis)
    for jti in jtis:
        assert len(jti) == 32 and "=" not in jti
        raw = base64.urlsafe_b64decode(jti)
        assert len(raw) == 24
        assert before <= int.from_bytes(raw[:6], "big") <= after
    # 18 random bytes each: no two share them.
    assert len({base64.urlsafe_b64decode(jti)[6:] for jti in jtis}) == len(jtis)
