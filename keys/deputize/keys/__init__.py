"""Deputize's JOSE core, shared by the server, the agent SDK and the resource-server verifier.

No web framework, no database, no network: keys, JWKS, thumbprints, JWT, DPoP and (later) the
delegation-chain rules, as pure functions both sides of the wire apply identically.
"""

from __future__ import annotations

from deputize.keys.dpop import (
    DPoPProof,
    access_token_hash,
    create_proof,
    normalize_htu,
    verify_proof,
)
from deputize.keys.errors import (
    InvalidClaimsError,
    InvalidKeyError,
    InvalidProofError,
    InvalidSignatureError,
    JoseError,
    MalformedError,
    UnsupportedAlgorithmError,
)
from deputize.keys.jwk import (
    SIGNING_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    PublicKey,
    SigningKey,
    load_public_jwk,
    thumbprint,
)
from deputize.keys.jwks import KeySet
from deputize.keys.jwt import (
    ParsedJWT,
    check_audience,
    check_times,
    finite_number,
    parse,
    sign,
)

__all__ = [
    "SIGNING_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "DPoPProof",
    "InvalidClaimsError",
    "InvalidKeyError",
    "InvalidProofError",
    "InvalidSignatureError",
    "JoseError",
    "KeySet",
    "MalformedError",
    "ParsedJWT",
    "PublicKey",
    "SigningKey",
    "UnsupportedAlgorithmError",
    "access_token_hash",
    "check_audience",
    "check_times",
    "create_proof",
    "finite_number",
    "load_public_jwk",
    "normalize_htu",
    "parse",
    "sign",
    "thumbprint",
    "verify_proof",
]
