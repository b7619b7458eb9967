"""The server's side of DPoP at the token endpoint: nonces (RFC 9449 §8) and replay (§11.1).

Nonces need no per-nonce state: a nonce is a time window number authenticated with a secret
every instance shares (stored in the database), so any instance can check any other's nonce
and a nonce is good for one to two ``dpop.nonce_lifetime`` periods.
"""

from __future__ import annotations

from collections.abc import Sequence

from deputize.keys import DPoPProof, InvalidProofError, verify_proof
from deputize.keys.nonces import NonceSource
from deputize.server.errors import InvalidDPoPProofError, UseDPoPNonceError
from deputize.server.settings import Settings
from deputize.server.storage.request_store import RequestStore


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
