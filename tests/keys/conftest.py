"""Shared fixtures for the JOSE core tests: RFC vectors and one signing key per algorithm.

Keys are session-scoped: generating a 3072-bit RSA key is the slowest thing these tests do,
and no test mutates a key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deputize.keys import SigningKey

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def load_vector() -> Callable[[str], dict[str, Any]]:
    """Read an RFC example from ``tests/keys/vectors/`` by file name."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
        return data

    return load


@pytest.fixture(scope="session")
def es256_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="session")
def other_es256_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="session")
def es384_key() -> SigningKey:
    return SigningKey.generate("ES384")


@pytest.fixture(scope="session")
def eddsa_key() -> SigningKey:
    return SigningKey.generate("EdDSA")


@pytest.fixture(scope="session")
def rs256_key() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture(scope="session")
def ps256_key(rs256_key: SigningKey) -> SigningKey:
    # The same RSA key pair, signing with RSASSA-PSS instead: saves a second key generation.
    return SigningKey.from_pem(rs256_key.to_pem(), "PS256")


_FIXTURE_FOR_ALG = {
    "ES256": "es256_key",
    "ES384": "es384_key",
    "EdDSA": "eddsa_key",
    "RS256": "rs256_key",
    "PS256": "ps256_key",
}


@pytest.fixture(
    params=["ES256", "EdDSA", "RS256"],
    ids=["with a P-256 key", "with an Ed25519 key", "with an RSA key"],
)
def signing_key(request: pytest.FixtureRequest) -> SigningKey:
    """One key for each algorithm Deputize signs its own tokens with (SIGNING_ALGORITHMS)."""
    key: SigningKey = request.getfixturevalue(_FIXTURE_FOR_ALG[request.param])
    return key


@pytest.fixture(
    params=["ES256", "ES384", "EdDSA", "RS256", "PS256"],
    ids=[
        "with an ES256 key",
        "with an ES384 key",
        "with an EdDSA key",
        "with an RS256 key",
        "with a PS256 key",
    ],
)
def any_key(request: pytest.FixtureRequest) -> SigningKey:
    """One key for each algorithm the package can verify (SUPPORTED_ALGORITHMS)."""
    key: SigningKey = request.getfixturevalue(_FIXTURE_FOR_ALG[request.param])
    return key
