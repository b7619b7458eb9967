"""The server's side of DPoP at the token endpoint: nonces (RFC 9449 §8) and replay (§11.1).

Nonces need no per-nonce state: a nonce is a time window number authenticated with a secret
every instance shares (stored in the database), so any instance can check any other's nonce
and a nonce is good for one to two ``dpop.nonce_lifetime`` periods.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence

from deputize.keys import DPoPProof, InvalidProofError, verify_proof
from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.errors import MalformedError
from deputize.server.errors import InvalidDPoPProofError, UseDPoPNonceError
from deputize.server.settings import Settings
from deputize.server.storage.request_store import RequestStore


class NonceSource:
    def __init__(self, secret: bytes, lifetime: int) -> None:
        self._secret = secret
        self._lifetime = lifetime
        self._macs: dict[int, bytes] = {}

    def _mac(self, window: int) -> bytes:
        mac = self._macs.get(window)
        if mac is None:
            packed = struct.pack(">Q", window)
            digest = hmac.new(self._secret, b"dpop-nonce" + packed, hashlib.sha256).digest()
            mac = packed + digest[:16]
            if len(self._macs) >= 8:  # only the windows around now are ever asked for
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
        current = int(now) // self._lifetime
        # The previous window keeps a just-issued nonce usable across a boundary; the next
        # one tolerates instances whose clocks run slightly ahead.
        if window not in (current - 1, current, current + 1):
            return False
        return hmac.compare_digest(raw, self._mac(window))


def screen_proof(
    headers: Sequence[str],
    *,
    settings: Settings,
    nonces: NonceSource,
    method: str,
    url: str,
    now: float,
) -> DPoPProof | None:
    """The checks that need no database: §4.3 checks 1-11 and the server nonce.

    Runs before client authentication, so a nonce challenge (the usual first answer) consumes
    neither the client's assertion nor the proof.  Returns None when there is no DPoP header.
    """
    if not headers:
        return None
    if len(headers) > 1:  # §4.3 check 1
        raise InvalidDPoPProofError("send exactly one DPoP header")
    try:
        proof = verify_proof(
            headers[0], method=method, url=url, now=now, max_age=settings.dpop_proof_max_age
        )
    except InvalidProofError as exc:
        raise InvalidDPoPProofError(exc.description) from None
    if settings.dpop_require_nonce and (
        proof.nonce is None or not nonces.is_valid(proof.nonce, now)
    ):
        # §8: not a failure of the client, a request to retry with the nonce we hand it.
        raise UseDPoPNonceError(
            "Authorization server requires nonce in DPoP proof", nonce=nonces.current(now)
        )
    return proof


async def remember_proof(store: RequestStore, proof: DPoPProof, settings: Settings) -> None:
    """§11.1: accept each proof once.  A proof is acceptable while ``iat`` is within
    ``proof_max_age`` of the clock, so its ``jti`` is remembered until that window has passed."""
    expires = proof.iat + settings.dpop_proof_max_age + 1
    if not await store.remember(f"dpop:{proof.jkt}:{proof.jti}", expires):
        raise InvalidDPoPProofError("DPoP proof has already been used")
