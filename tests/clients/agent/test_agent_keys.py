"""The agent's DPoP key: generated, saved and loaded back from a JWK or a PEM file."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from deputize.agent import key_from_jwk, load_key, private_jwk, save_key
from deputize.keys import InvalidKeyError, SigningKey, create_proof, verify_proof
from deputize.keys._b64 import b64url_encode


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA"])
def test_saved_jwk_loads_back_to_the_same_key(tmp_path: Path, alg: str) -> None:
    key = SigningKey.generate(alg)
    path = tmp_path / "dpop.jwk"
    save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key(path)
    assert (loaded.kid, loaded.alg) == (key.kid, key.alg)
    proof = create_proof(loaded, "GET", "https://docs.example.com/x")
    assert verify_proof(proof, method="GET", url="https://docs.example.com/x", now=time.time())


def test_pem_files_load_with_their_algorithm(tmp_path: Path) -> None:
    for alg in ("ES256", "EdDSA"):
        key = SigningKey.generate(alg)
        path = tmp_path / f"{alg}.pem"
        path.write_bytes(key.to_pem())
        assert load_key(path).kid == key.kid
        assert load_key(path).alg == alg


def test_rsa_private_jwk() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()

    def enc(value: int) -> str:
        return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    jwk = {
        "kty": "RSA", "n": enc(numbers.public_numbers.n), "e": enc(numbers.public_numbers.e),
        "d": enc(numbers.d), "p": enc(numbers.p), "q": enc(numbers.q), "dp": enc(numbers.dmp1),
        "dq": enc(numbers.dmq1), "qi": enc(numbers.iqmp), "alg": "RS256",
    }  # fmt: skip
    assert key_from_jwk(jwk).alg == "RS256"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "AAAA"},
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "d": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AA"},
    ],
    ids=["refuses a symmetric key", "refuses an unsupported curve", "refuses a public key"],
)
def test_unusable_jwks_are_refused(jwk: dict[str, str]) -> None:
    with pytest.raises(InvalidKeyError):
        key_from_jwk(jwk)


def test_mismatched_public_members_are_refused() -> None:
    jwk = private_jwk(SigningKey.generate("ES256"))
    jwk["x"] = private_jwk(SigningKey.generate("ES256"))["x"]
    with pytest.raises(InvalidKeyError):
        key_from_jwk(jwk)
