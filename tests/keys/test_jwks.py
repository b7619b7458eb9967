"""deputize.keys.jwks: loading a JWK Set and picking the key for a token."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from deputize.keys import (
    SUPPORTED_ALGORITHMS,
    InvalidKeyError,
    KeySet,
    MalformedError,
    ParsedJWT,
    SigningKey,
    parse,
    sign,
)
from deputize.keys._b64 import b64url_encode

TYP = "at+jwt"
CLAIMS: dict[str, Any] = {"sub": "agent-1"}


def _segment(value: object) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _token(key: SigningKey, **header: Any) -> ParsedJWT:
    """A parsed token signed by ``key``, with header members overridden (None removes one)."""
    full: dict[str, Any] = {"alg": key.alg, "typ": TYP, "kid": key.kid, **header}
    full = {k: v for k, v in full.items() if v is not None}
    signing_input = f"{_segment(full)}.{_segment(CLAIMS)}"
    signature = b64url_encode(key.sign(signing_input.encode("ascii")))
    return parse(f"{signing_input}.{signature}", algorithms=SUPPORTED_ALGORITHMS, typ=TYP)


def _without_kid(jwk: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in jwk.items() if k != "kid"}


@pytest.fixture
def key_set(es256_key: SigningKey, eddsa_key: SigningKey, rs256_key: SigningKey) -> KeySet:
    return KeySet.from_jwks(
        {"keys": [es256_key.public_jwk(), eddsa_key.public_jwk(), rs256_key.public_jwk()]}
    )


# --- lookup by kid ----------------------------------------------------------------------------


def test_from_jwks_indexes_keys_by_kid(
    key_set: KeySet, es256_key: SigningKey, eddsa_key: SigningKey, rs256_key: SigningKey
) -> None:
    assert len(key_set) == 3
    published = key_set.keys()
    for key in (es256_key, eddsa_key, rs256_key):
        assert key.kid in key_set
        assert key.public in published


def test_find_selects_the_key_named_by_kid(key_set: KeySet, signing_key: SigningKey) -> None:
    token = parse(sign(CLAIMS, signing_key, typ=TYP), algorithms=SUPPORTED_ALGORITHMS, typ=TYP)
    found = key_set.find(token)
    assert found == signing_key.public
    assert dict(token.verify(found)) == CLAIMS


def test_find_uses_the_publisher_kid_not_the_thumbprint(es256_key: SigningKey) -> None:
    key_set = KeySet.from_jwks({"keys": [{**es256_key.public_jwk(), "kid": "2024-rotation"}]})
    assert "2024-rotation" in key_set
    assert es256_key.kid not in key_set
    assert key_set.find(_token(es256_key, kid="2024-rotation")) == es256_key.public


@pytest.mark.parametrize(
    "kid",
    ["unknown", "", "../../etc/passwd", "x" * 1000],
    ids=[
        "misses an unknown kid",
        "misses an empty kid",
        "treats a path-like kid as a plain miss",
        "misses a very long kid",
    ],
)
def test_find_returns_none_on_a_kid_miss(key_set: KeySet, es256_key: SigningKey, kid: str) -> None:
    assert key_set.find(_token(es256_key, kid=kid)) is None


def test_find_returns_none_when_the_alg_does_not_fit_the_named_key(
    key_set: KeySet, es256_key: SigningKey, rs256_key: SigningKey
) -> None:
    # An RS256 token that names the EC key's kid: the key exists but cannot produce RS256.
    assert key_set.find(_token(rs256_key, kid=es256_key.kid)) is None


def test_find_accepts_any_alg_the_named_key_fits(key_set: KeySet, rs256_key: SigningKey) -> None:
    ps256 = SigningKey.from_pem(rs256_key.to_pem(), "PS256")
    token = _token(ps256)
    assert token.kid == rs256_key.kid
    found = key_set.find(token)
    assert found == rs256_key.public
    token.verify(found)


def test_find_never_selects_a_key_for_an_hmac_forgery(
    key_set: KeySet, rs256_key: SigningKey
) -> None:
    secret = rs256_key.public.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_segment({'alg': 'HS256', 'typ': TYP, 'kid': rs256_key.kid})}.{_segment(CLAIMS)}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = parse(f"{signing_input}.{b64url_encode(mac)}", algorithms=["HS256"], typ=TYP)
    assert key_set.find(token) is None


# --- keys published without kid --------------------------------------------------------------


def test_a_key_without_kid_is_indexed_by_thumbprint(es256_key: SigningKey) -> None:
    key_set = KeySet.from_jwks({"keys": [_without_kid(es256_key.public_jwk())]})
    assert list(key_set.keys()) == [es256_key.public]
    assert es256_key.public.thumbprint in key_set


@pytest.mark.parametrize(
    "kid",
    ["", 42, None, ["k1"]],
    ids=[
        "indexes a key with an empty kid by thumbprint",
        "indexes a key with a numeric kid by thumbprint",
        "indexes a key with a null kid by thumbprint",
        "indexes a key with an array kid by thumbprint",
    ],
)
def test_a_key_with_an_unusable_kid_is_indexed_by_thumbprint(
    es256_key: SigningKey, kid: object
) -> None:
    key_set = KeySet.from_jwks({"keys": [{**es256_key.public_jwk(), "kid": kid}]})
    assert es256_key.public.thumbprint in key_set


def test_a_token_without_kid_finds_the_only_fitting_key(
    es256_key: SigningKey, eddsa_key: SigningKey, rs256_key: SigningKey
) -> None:
    key_set = KeySet.from_jwks(
        {"keys": [_without_kid(k.public_jwk()) for k in (es256_key, eddsa_key, rs256_key)]}
    )
    for key in (es256_key, eddsa_key, rs256_key):
        token = _token(key, kid=None)
        assert token.kid is None
        assert key_set.find(token) == key.public


@pytest.mark.parametrize(
    "kid", [5, None, ["a"], {"a": 1}], ids=["a number", "null", "an array", "an object"]
)
def test_a_token_whose_kid_is_not_a_string_finds_nothing(
    es256_key: SigningKey, kid: object
) -> None:
    """A kid that is present but no string names no key: it is not read as "no kid", which
    would fall back to the only fitting key."""
    key_set = KeySet.from_jwks({"keys": [es256_key.public_jwk()]})
    assert key_set.find_for_header({"alg": "ES256", "kid": kid}) is None
    assert key_set.find_for_header({"alg": "ES256"}) == es256_key.public


def test_a_token_without_kid_finds_nothing_when_two_keys_fit(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    key_set = KeySet.from_jwks(
        {"keys": [_without_kid(es256_key.public_jwk()), _without_kid(other_es256_key.public_jwk())]}
    )
    assert key_set.find(_token(es256_key, kid=None)) is None


def test_a_token_without_kid_finds_nothing_when_no_key_fits(
    es256_key: SigningKey, eddsa_key: SigningKey
) -> None:
    key_set = KeySet.from_jwks({"keys": [es256_key.public_jwk()]})
    assert key_set.find(_token(eddsa_key, kid=None)) is None


def test_an_empty_set_finds_nothing(es256_key: SigningKey) -> None:
    key_set = KeySet.from_jwks({"keys": []})
    assert len(key_set) == 0
    assert key_set.find(_token(es256_key)) is None
    assert key_set.find(_token(es256_key, kid=None)) is None


# --- refusing a bad set -----------------------------------------------------------------------


def test_duplicate_kid_is_rejected(es256_key: SigningKey, other_es256_key: SigningKey) -> None:
    jwks = {
        "keys": [
            {**es256_key.public_jwk(), "kid": "k1"},
            {**other_es256_key.public_jwk(), "kid": "k1"},
        ]
    }
    with pytest.raises(InvalidKeyError, match="duplicate"):
        KeySet.from_jwks(jwks)


def test_the_same_key_twice_without_kid_is_rejected(es256_key: SigningKey) -> None:
    jwk = _without_kid(es256_key.public_jwk())
    with pytest.raises(InvalidKeyError, match="duplicate"):
        KeySet.from_jwks({"keys": [jwk, dict(jwk)]})


def test_constructor_rejects_duplicate_kids(es256_key: SigningKey) -> None:
    with pytest.raises(InvalidKeyError, match="duplicate"):
        KeySet([("k1", es256_key.public), ("k1", es256_key.public)])


@pytest.mark.parametrize(
    "position",
    [0, 1],
    ids=["rejects a set whose first key is private", "rejects a set whose second key is private"],
)
def test_a_private_key_in_the_set_rejects_the_whole_set(
    es256_key: SigningKey, eddsa_key: SigningKey, position: int
) -> None:
    keys: list[dict[str, Any]] = [es256_key.public_jwk(), eddsa_key.public_jwk()]
    keys[position] = {**keys[position], "d": "AAAA"}
    with pytest.raises(InvalidKeyError, match="private"):
        KeySet.from_jwks({"keys": keys})


def test_a_symmetric_key_in_the_set_rejects_the_whole_set(es256_key: SigningKey) -> None:
    with pytest.raises(InvalidKeyError):
        KeySet.from_jwks({"keys": [es256_key.public_jwk(), {"kty": "oct", "k": "c2VjcmV0"}]})


def test_keys_for_encryption_are_skipped(es256_key: SigningKey, eddsa_key: SigningKey) -> None:
    key_set = KeySet.from_jwks(
        {"keys": [{**es256_key.public_jwk(), "use": "enc"}, eddsa_key.public_jwk()]}
    )
    assert len(key_set) == 1
    assert es256_key.kid not in key_set
    assert key_set.find(_token(es256_key)) is None


def test_a_key_without_use_counts_as_a_signing_key(es256_key: SigningKey) -> None:
    jwk = {k: v for k, v in es256_key.public_jwk().items() if k != "use"}
    assert es256_key.kid in KeySet.from_jwks({"keys": [jwk]})


def test_entries_that_are_not_objects_are_skipped(es256_key: SigningKey) -> None:
    key_set = KeySet.from_jwks({"keys": ["a string", 7, None, [], es256_key.public_jwk()]})
    assert len(key_set) == 1


@pytest.mark.parametrize(
    "unknown",
    [
        {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed448", "x": "AA"},
        {"kty": "future-kty"},
    ],
    ids=[
        "skips a P-521 key",
        "skips an Ed448 key",
        "skips a key type from the future",
    ],
)
def test_keys_of_unknown_type_are_skipped(es256_key: SigningKey, unknown: dict[str, str]) -> None:
    key_set = KeySet.from_jwks({"keys": [es256_key.public_jwk(), unknown]})
    assert list(key_set.keys()) == [es256_key.public]


def test_too_many_keys_are_rejected(es256_key: SigningKey) -> None:
    # The limit counts entries as published, before any are skipped.
    skipped = {**es256_key.public_jwk(), "use": "enc"}
    assert len(KeySet.from_jwks({"keys": [skipped] * 64})) == 0
    with pytest.raises(MalformedError, match="too many"):
        KeySet.from_jwks({"keys": [skipped] * 65})


def test_max_keys_is_configurable(es256_key: SigningKey, eddsa_key: SigningKey) -> None:
    jwks = {"keys": [es256_key.public_jwk(), eddsa_key.public_jwk()]}
    assert len(KeySet.from_jwks(jwks, max_keys=2)) == 2
    with pytest.raises(MalformedError, match="too many"):
        KeySet.from_jwks(jwks, max_keys=1)


@pytest.mark.parametrize(
    "document",
    [None, [], "keys", {}, {"keys": None}, {"keys": {}}, {"keys": "[]"}, {"key": []}],
    ids=[
        "rejects null",
        "rejects a bare array of keys",
        "rejects a string",
        "rejects an object without keys",
        "rejects null keys",
        "rejects keys that is an object",
        "rejects keys that is a string",
        "rejects a misspelled keys member",
    ],
)
def test_from_jwks_rejects_a_document_that_is_not_a_jwks(document: object) -> None:
    with pytest.raises(MalformedError, match="'keys' array"):
        KeySet.from_jwks(document)
