"""The agent's DPoP key: generated, or loaded from a PEM or JWK file or a JWK object.

The DPoP key is the agent's proof of possession: every token Deputize issues it is bound to
the key's thumbprint (RFC 9449 §6), so keep the file private.  Keep it apart from the
``private_key_jwt`` client-authentication key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from deputize.keys import InvalidKeyError, MalformedError, SigningKey
from deputize.keys._b64 import b64url_decode, b64url_encode

_EC = {"P-256": (ec.SECP256R1(), "ES256", 32), "P-384": (ec.SECP384R1(), "ES384", 48)}


def _alg_for(key: Any, requested: str | None) -> str:
    if requested is not None:
        return requested
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES384" if key.curve.name == "secp384r1" else "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    return "PS256"


def _int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKeyError(f"private JWK member {name!r} missing")
    return int.from_bytes(b64url_decode(value), "big")


def key_from_jwk(jwk: Mapping[str, Any]) -> SigningKey:
    """A signing key from a private JWK (EC P-256/P-384, Ed25519 or RSA)."""
    try:
        return _key_from_jwk(jwk)
    except (ValueError, MalformedError):  # bad numbers, a point off the curve, bad base64url
        raise InvalidKeyError("the private JWK does not describe a valid key") from None


def _key_from_jwk(jwk: Mapping[str, Any]) -> SigningKey:
    kty, alg = jwk.get("kty"), jwk.get("alg")
    alg = alg if isinstance(alg, str) else None
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if kty == "EC" and jwk.get("crv") in _EC:
        curve, default_alg, _ = _EC[str(jwk["crv"])]
        public = ec.EllipticCurvePublicNumbers(_int(jwk, "x"), _int(jwk, "y"), curve)
        private = ec.EllipticCurvePrivateNumbers(_int(jwk, "d"), public).private_key()
        alg = alg or default_alg
    elif kty == "OKP" and jwk.get("crv") == "Ed25519":
        d = jwk.get("d")
        if not isinstance(d, str):
            raise InvalidKeyError("private JWK member 'd' missing")
        private = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(d))
    elif kty == "RSA":
        public_rsa = rsa.RSAPublicNumbers(_int(jwk, "e"), _int(jwk, "n"))
        private = rsa.RSAPrivateNumbers(
            _int(jwk, "p"), _int(jwk, "q"), _int(jwk, "d"), _int(jwk, "dp"), _int(jwk, "dq"),
            _int(jwk, "qi"), public_rsa,
        ).private_key()  # fmt: skip
    else:
        raise InvalidKeyError("unsupported private JWK (EC P-256/P-384, Ed25519 or RSA)")
    key = SigningKey(private, _alg_for(private, alg))
    if jwk.get("x") is not None and kty in ("EC", "OKP") and key.public.jwk["x"] != jwk["x"]:
        raise InvalidKeyError("private JWK's public members do not match its private key")
    return key


def private_jwk(key: SigningKey) -> dict[str, str]:
    """The private JWK of an EC or Ed25519 key, for storing a generated DPoP key."""
    private = serialization.load_pem_private_key(key.to_pem(), password=None)
    jwk = dict(key.public.to_jwk(alg=key.alg))
    if isinstance(private, ec.EllipticCurvePrivateKey):
        size = _EC[jwk["crv"]][2]
        jwk["d"] = b64url_encode(private.private_numbers().private_value.to_bytes(size, "big"))
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        jwk["d"] = b64url_encode(raw)
    else:
        raise InvalidKeyError("export RSA keys as PEM (SigningKey.to_pem)")
    return jwk


def load_key(
    source: str | os.PathLike[str] | Mapping[str, Any], *, alg: str | None = None
) -> SigningKey:
    """A key from a private JWK (object or JSON file) or an unencrypted PEM file."""
    if isinstance(source, Mapping):
        return key_from_jwk(source)
    text = Path(source).read_bytes()
    if text.lstrip().startswith(b"-----BEGIN"):
        try:
            private = serialization.load_pem_private_key(text, password=None)
        except (TypeError, ValueError):
            raise InvalidKeyError("not an unencrypted PEM private key") from None
        return SigningKey.from_pem(text, _alg_for(private, alg))
    try:
        document = json.loads(text)
    except ValueError:
        raise InvalidKeyError("key file is neither PEM nor a JSON JWK") from None
    if not isinstance(document, Mapping):
        raise InvalidKeyError("key file is not a JWK object")
    return key_from_jwk(document)


def save_key(key: SigningKey, path: str | os.PathLike[str]) -> None:
    """Write the key as a private JWK, readable by its owner only."""
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(private_jwk(key), file)
