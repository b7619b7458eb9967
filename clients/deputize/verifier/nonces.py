"""Resource-server DPoP nonces (RFC 9449 §9), stateless: a time window authenticated with a key.

A nonce is good for the window it was made in and the ones either side, so one nonce lasts
one to two ``lifetime`` periods.  Processes that share ``secret`` accept each other's nonces.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.errors import MalformedError


class NonceSource:
    def __init__(self, secret: bytes | None = None, *, lifetime: int = 300) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._lifetime = lifetime
        self._cached: tuple[int, str] = (-1, "")

    def _mac(self, window: int) -> bytes:
        packed = struct.pack(">Q", window)
        return packed + hmac.new(self._secret, b"rs-nonce" + packed, hashlib.sha256).digest()[:16]

    def current(self, now: float) -> str:
        window = int(now) // self._lifetime
        if self._cached[0] != window:
            self._cached = (window, b64url_encode(self._mac(window)))
        return self._cached[1]

    def is_valid(self, nonce: str, now: float) -> bool:
        try:
            raw = b64url_decode(nonce)
        except MalformedError:
            return False
        if len(raw) != 24:
            return False
        (window,) = struct.unpack(">Q", raw[:8])
        if abs(window - int(now) // self._lifetime) > 1:
            return False
        return hmac.compare_digest(raw, self._mac(window))
