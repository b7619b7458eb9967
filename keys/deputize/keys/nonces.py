"""Stateless DPoP nonces (RFC 9449 §8 at the authorization server, §9 at resource servers).

A nonce is a time-window number authenticated with a secret: nothing is stored per nonce, and
processes that share the secret accept each other's nonces.  A nonce is good for the window it
was made in and the ones either side, so one nonce lasts one to two ``lifetime`` periods; the
next window tolerates a peer whose clock runs slightly ahead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.errors import MalformedError

_RECENT_WINDOWS = 8


class NonceSource:
    """Makes and checks nonces; ``label`` keeps one use's nonces from passing for another's."""

    def __init__(
        self, secret: bytes | None = None, *, lifetime: int = 300, label: bytes = b"dpop-nonce"
    ) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._lifetime = lifetime
        self._label = label
        self._macs: dict[int, bytes] = {}

    def _mac(self, window: int) -> bytes:
        mac = self._macs.get(window)
        if mac is None:
            packed = struct.pack(">Q", window)
            digest = hmac.new(self._secret, self._label + packed, hashlib.sha256).digest()
            mac = packed + digest[:16]
            if len(self._macs) >= _RECENT_WINDOWS:  # only windows around now are asked for
                self._macs.clear()
            self._macs[window] = mac
        return mac

    def current(self, now: float) -> str:
        return b64url_encode(self._mac(int(now) // self._lifetime))

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
