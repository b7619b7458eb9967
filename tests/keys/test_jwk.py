"""deputize.keys.jwk: RFC 7638 thumbprints, public JWK validation, signing keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from deputize.keys import (
    SIGNING_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    InvalidKeyError,
    InvalidSignatureError,
    MalformedError,
    PublicKey,
    SigningKey,
    UnsupportedAlgorithmError,
    load_public_jwk,
    thumbprint,
)
from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.jwk import _der_signature

RFC7638 = "rfc7638_3_1.json"
RFC8037 = "rfc8037_a.json"
MESSAGE = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9"

B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The prime of P-256's field, for building points that are not on the curve.
P256_FIELD = 2**256 - 2**224 + 2**192 + 2**96 - 1


@pytest.fixture
def rfc7638_jwk(load_vector: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    jwk: dict[str, Any] = load_vector(RFC7638)["jwk"]
    return jwk


@pytest.fixture(scope="module")
def small_rsa_key() -> rsa.RSAPrivateKey:
    # Deliberately too small: the point is that it is refused.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def _public_members(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k not in ("kid", "alg", "use")}


def _flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


# --- RFC 7638 thumbprints ---------------------------------------------------------------------


def test_thumbprint_matches_the_rfc7638_example(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    vector = load_vector(RFC7638)
    assert thumbprint(vector["jwk"]) == vector["thumbprint"]


def test_rfc7638_vector_is_the_sha256_of_its_canonical_json(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    # Guards the fixture itself: the RFC's canonical JSON (§3.1) hashes to its thumbprint.
    vector = load_vector(RFC7638)
    digest = hashlib.sha256(vector["canonical_json"].encode("utf-8")).digest()
    assert b64url_encode(digest) == vector["thumbprint"]


def test_loaded_key_carries_the_rfc7638_thumbprint(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    vector = load_vector(RFC7638)
    key = load_public_jwk(vector["jwk"])
    assert key.thumbprint == vector["thumbprint"]
    assert key.kty == "RSA"
    assert key.algorithms == frozenset({"RS256", "PS256"})
    # Only the defining members are kept: kid and alg never leak into an embedded JWK.
    assert dict(key.jwk) == {"kty": "RSA", "n": vector["jwk"]["n"], "e": "AQAB"}


def test_thumbprint_matches_the_rfc8037_ed25519_example(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    vector = load_vector(RFC8037)
    assert thumbprint(vector["public_jwk"]) == vector["thumbprint"]
    assert load_public_jwk(vector["public_jwk"]).thumbprint == vector["thumbprint"]


@pytest.mark.parametrize(
    "extra",
    [
        {"kid": "a-completely-different-kid"},
        {"alg": "PS256"},
        {"use": "sig"},
        {"kid": None, "alg": None, "use": None},
        {"key_ops": ["verify"], "x5t#S256": "abc"},
    ],
    ids=[
        "a different kid does not change the thumbprint",
        "a different alg does not change the thumbprint",
        "adding use does not change the thumbprint",
        "removing kid, alg and use does not change the thumbprint",
        "other optional members do not change the thumbprint",
    ],
)
def test_optional_members_do_not_change_the_thumbprint(
    rfc7638_jwk: dict[str, Any], extra: dict[str, Any]
) -> None:
    expected = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    jwk = {**rfc7638_jwk, **extra}
    jwk = {k: v for k, v in jwk.items() if v is not None}
    assert thumbprint(jwk) == expected
    assert load_public_jwk(jwk).thumbprint == expected


def test_member_order_does_not_change_the_thumbprint(rfc7638_jwk: dict[str, Any]) -> None:
    reordered = dict(reversed(list(rfc7638_jwk.items())))
    assert list(reordered) != list(rfc7638_jwk)
    assert thumbprint(reordered) == thumbprint(rfc7638_jwk)


def test_thumbprint_depends_on_the_key_material(es256_key: SigningKey) -> None:
    jwk = es256_key.public_jwk()
    changed = {**jwk, "y": b64url_encode(_flip_last_bit(b64url_decode(jwk["y"])))}
    assert thumbprint(changed) != thumbprint(jwk)


@pytest.mark.parametrize(
    "key_fixture",
    ["es256_key", "es384_key", "eddsa_key", "rs256_key"],
    ids=["for a P-256 key", "for a P-384 key", "for an Ed25519 key", "for an RSA key"],
)
def test_thumbprint_hashes_the_required_members_in_lexicographic_order(
    key_fixture: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_fixture)
    jwk = key.public.jwk
    canonical = json.dumps(dict(sorted(jwk.items())), separators=(",", ":"))
    assert key.kid == b64url_encode(hashlib.sha256(canonical.encode()).digest())


@pytest.mark.parametrize(
    "jwk",
    [
        {"n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": 1, "n": "AQAB", "e": "AQAB"},
        {"kty": "RSA", "e": "AQAB"},
        {"kty": "RSA", "n": 12345, "e": "AQAB"},
    ],
    ids=[
        "rejects a JWK without kty",
        "rejects a symmetric key type",
        "rejects a kty that is not a string",
        "rejects a JWK missing a required member",
        "rejects a required member that is not a string",
    ],
)
def test_thumbprint_rejects_unusable_jwks(jwk: dict[str, Any]) -> None:
    with pytest.raises(InvalidKeyError):
        thumbprint(jwk)


# --- load_public_jwk --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "member", ["d", "p", "q", "dp", "dq", "qi", "oth", "k"], ids=lambda m: f"rejects member {m}"
)
def test_load_public_jwk_rejects_private_members_of_an_rsa_key(
    rfc7638_jwk: dict[str, Any], member: str
) -> None:
    with pytest.raises(InvalidKeyError, match="private"):
        load_public_jwk({**rfc7638_jwk, member: "AQAB"})


@pytest.mark.parametrize(
    "key_fixture",
    ["es256_key", "eddsa_key"],
    ids=["rejects an EC key carrying d", "rejects an OKP key carrying d"],
)
def test_load_public_jwk_rejects_a_private_curve_key(
    key_fixture: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_fixture)
    with pytest.raises(InvalidKeyError, match="private"):
        load_public_jwk({**key.public_jwk(), "d": "AAAA"})


def test_load_public_jwk_rejects_private_members_even_when_empty(es256_key: SigningKey) -> None:
    with pytest.raises(InvalidKeyError):
        load_public_jwk({**es256_key.public_jwk(), "d": ""})


@pytest.mark.parametrize(
    "document",
    [None, [], ["kty", "EC"], "kty", 42, b'{"kty":"EC"}'],
    ids=[
        "rejects null",
        "rejects an empty array",
        "rejects an array",
        "rejects a string",
        "rejects a number",
        "rejects raw JSON bytes",
    ],
)
def test_load_public_jwk_rejects_a_non_object(document: object) -> None:
    with pytest.raises(MalformedError):
        load_public_jwk(document)


@pytest.mark.parametrize(
    "jwk",
    [
        {},
        {"kty": "oct"},
        {"kty": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "DSA", "p": "AQAB"},
        {"kty": ["EC"]},
    ],
    ids=[
        "rejects a JWK without kty",
        "rejects kty oct",
        "rejects kty in the wrong case",
        "rejects an unknown kty",
        "rejects a kty that is not a string",
    ],
)
def test_load_public_jwk_rejects_unknown_key_types(jwk: dict[str, Any]) -> None:
    with pytest.raises(InvalidKeyError):
        load_public_jwk(jwk)


@pytest.mark.parametrize(
    ("kty", "crv"),
    [("EC", "P-521"), ("EC", "secp256k1"), ("EC", "p-256"), ("OKP", "Ed448"), ("OKP", "X25519")],
    ids=[
        "rejects EC curve P-521",
        "rejects EC curve secp256k1",
        "rejects an EC curve name in the wrong case",
        "rejects OKP curve Ed448",
        "rejects OKP curve X25519, a key-agreement curve",
    ],
)
def test_load_public_jwk_rejects_unknown_curves(
    kty: str, crv: str, es256_key: SigningKey, eddsa_key: SigningKey
) -> None:
    base = es256_key.public_jwk() if kty == "EC" else eddsa_key.public_jwk()
    with pytest.raises(InvalidKeyError, match="curve"):
        load_public_jwk({**base, "crv": crv})


@pytest.mark.parametrize(
    ("member", "change"),
    [
        ("x", lambda raw: raw[1:]),
        ("y", lambda raw: raw[1:]),
        ("x", lambda raw: b"\x00" + raw),
        ("y", lambda raw: raw + raw[:16]),
    ],
    ids=[
        "rejects a 31-byte x coordinate",
        "rejects a 31-byte y coordinate",
        "rejects an x coordinate with a leading zero byte added",
        "rejects a 48-byte y coordinate on P-256",
    ],
)
def test_load_public_jwk_rejects_wrong_length_ec_coordinates(
    es256_key: SigningKey, member: str, change: Callable[[bytes], bytes]
) -> None:
    jwk = es256_key.public_jwk()
    jwk[member] = b64url_encode(change(b64url_decode(jwk[member])))
    with pytest.raises(InvalidKeyError, match="length"):
        load_public_jwk(jwk)


def test_load_public_jwk_rejects_p384_coordinates_labelled_p256(es384_key: SigningKey) -> None:
    with pytest.raises(InvalidKeyError, match="length"):
        load_public_jwk({**es384_key.public_jwk(), "crv": "P-256"})


def test_load_public_jwk_rejects_a_short_ed25519_key(eddsa_key: SigningKey) -> None:
    jwk = eddsa_key.public_jwk()
    jwk["x"] = b64url_encode(b64url_decode(jwk["x"])[:31])
    with pytest.raises(InvalidKeyError, match="length"):
        load_public_jwk(jwk)


def _p256_jwk(x: int, y: int) -> dict[str, str]:
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(x.to_bytes(32, "big")),
        "y": b64url_encode(y.to_bytes(32, "big")),
    }


def test_load_public_jwk_rejects_an_off_curve_point(es256_key: SigningKey) -> None:
    numbers = es256_key.public.jwk
    x = int.from_bytes(b64url_decode(numbers["x"]), "big")
    y = int.from_bytes(b64url_decode(numbers["y"]), "big")
    with pytest.raises(InvalidKeyError, match="valid public key"):
        load_public_jwk(_p256_jwk(x, (y + 1) % P256_FIELD))


@pytest.mark.parametrize(
    ("x", "y"),
    [(0, 0), (1, 1), (P256_FIELD - 1, P256_FIELD - 1)],
    ids=["rejects the point (0, 0)", "rejects the point (1, 1)", "rejects the point (p-1, p-1)"],
)
def test_load_public_jwk_rejects_degenerate_points(x: int, y: int) -> None:
    with pytest.raises(InvalidKeyError):
        load_public_jwk(_p256_jwk(x, y))


def test_load_public_jwk_rejects_a_1024_bit_rsa_key(small_rsa_key: rsa.RSAPrivateKey) -> None:
    numbers = small_rsa_key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64url_encode(numbers.n.to_bytes(128, "big")),
        "e": b64url_encode(numbers.e.to_bytes(3, "big")),
    }
    with pytest.raises(InvalidKeyError, match="2048"):
        load_public_jwk(jwk)


def test_load_public_jwk_rejects_a_small_modulus_hidden_behind_leading_zeros(
    small_rsa_key: rsa.RSAPrivateKey,
) -> None:
    # Padding n to 256 bytes must not make a 1024-bit modulus count as 2048 bits.
    numbers = small_rsa_key.public_key().public_numbers()
    jwk = {"kty": "RSA", "n": b64url_encode(numbers.n.to_bytes(256, "big")), "e": "AQAB"}
    with pytest.raises(InvalidKeyError, match="2048"):
        load_public_jwk(jwk)


def test_load_public_jwk_accepts_a_2048_bit_rsa_key(rfc7638_jwk: dict[str, Any]) -> None:
    assert len(b64url_decode(rfc7638_jwk["n"])) * 8 == 2048
    assert load_public_jwk(rfc7638_jwk).kty == "RSA"


@pytest.mark.parametrize(
    "e",
    [b"\x01", b"\x02", b"\x01\x00\x00", b"\x01" + b"\x00" * 8 + b"\x01"],
    ids=[
        "rejects exponent 1",
        "rejects exponent 2",
        "rejects an even exponent",
        "rejects an exponent longer than 64 bits",
    ],
)
def test_load_public_jwk_rejects_bad_rsa_exponents(rfc7638_jwk: dict[str, Any], e: bytes) -> None:
    with pytest.raises(InvalidKeyError, match="exponent"):
        load_public_jwk({**rfc7638_jwk, "e": b64url_encode(e)})


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s + "=",
        lambda s: s.replace("-", "+").replace("_", "/") if ("-" in s or "_" in s) else s + "+",
        lambda s: s[:10] + " " + s[10:],
        lambda s: s + "AA",
        lambda s: s[:-1] + B64URL_ALPHABET[B64URL_ALPHABET.index(s[-1]) | 1],
        lambda s: s[:-1] + "é",
    ],
    ids=[
        "rejects base64url with padding",
        "rejects the standard base64 alphabet",
        "rejects embedded whitespace",
        "rejects a length that no byte string encodes to",
        "rejects non-zero unused trailing bits",
        "rejects a non-ASCII character",
    ],
)
def test_load_public_jwk_rejects_bad_base64url(
    es256_key: SigningKey, mangle: Callable[[str], str]
) -> None:
    jwk = es256_key.public_jwk()
    # 32 bytes encode to 43 characters, so the last character carries 2 unused bits.
    assert len(jwk["x"]) == 43
    with pytest.raises(InvalidKeyError, match="base64url"):
        load_public_jwk({**jwk, "x": mangle(jwk["x"])})


def test_load_public_jwk_rejects_an_oversized_member(rfc7638_jwk: dict[str, Any]) -> None:
    with pytest.raises(InvalidKeyError):
        load_public_jwk({**rfc7638_jwk, "n": "A" * 1401})


def test_load_public_jwk_keeps_only_the_defining_members(es256_key: SigningKey) -> None:
    key = load_public_jwk({**es256_key.public_jwk(), "x5u": "https://attacker.example/"})
    assert set(key.jwk) == {"kty", "crv", "x", "y"}
    assert key == es256_key.public


# --- SigningKey -------------------------------------------------------------------------------


def test_signing_key_round_trip(signing_key: SigningKey) -> None:
    signature = signing_key.sign(MESSAGE)
    signing_key.public.verify(signing_key.alg, MESSAGE, signature)


def test_every_supported_algorithm_round_trips(any_key: SigningKey) -> None:
    any_key.public.verify(any_key.alg, MESSAGE, any_key.sign(MESSAGE))


def test_signing_algorithms_are_supported_algorithms() -> None:
    assert set(SIGNING_ALGORITHMS) <= set(SUPPORTED_ALGORITHMS)
    assert not {"none", "HS256", "HS384", "HS512"} & set(SUPPORTED_ALGORITHMS)


@pytest.mark.parametrize(
    ("key_fixture", "length"),
    [("es256_key", 64), ("es384_key", 96), ("eddsa_key", 64), ("rs256_key", 384)],
    ids=[
        "ES256 signatures are 64-byte R||S",
        "ES384 signatures are 96-byte R||S",
        "EdDSA signatures are 64 bytes",
        "RS256 signatures are as long as the 3072-bit modulus",
    ],
)
def test_signature_lengths(key_fixture: str, length: int, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(key_fixture)
    assert len(key.sign(MESSAGE)) == length


def test_signing_key_reproduces_the_rfc8037_signature(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    vector = load_vector(RFC8037)
    private = ed25519.Ed25519PrivateKey.from_private_bytes(
        b64url_decode(vector["private_jwk"]["d"])
    )
    key = SigningKey(private, "EdDSA")
    signing_input, _, signature = vector["jws"].rpartition(".")
    assert key.kid == vector["thumbprint"]
    assert key.sign(signing_input.encode()) == b64url_decode(signature)  # Ed25519 is deterministic
    load_public_jwk(vector["public_jwk"]).verify(
        "EdDSA", signing_input.encode(), b64url_decode(signature)
    )


def test_signing_key_kid_is_the_thumbprint(signing_key: SigningKey) -> None:
    assert signing_key.kid == signing_key.public.thumbprint == thumbprint(signing_key.public_jwk())


def test_public_jwk_is_publishable(signing_key: SigningKey) -> None:
    jwk = signing_key.public_jwk()
    assert jwk["kid"] == signing_key.kid
    assert jwk["alg"] == signing_key.alg
    assert jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(jwk)
    assert load_public_jwk(jwk) == signing_key.public


def test_to_jwk_adds_extra_members_without_changing_the_key(es256_key: SigningKey) -> None:
    jwk = es256_key.public.to_jwk(kid="k1")
    assert jwk == {**es256_key.public.jwk, "kid": "k1"}
    assert "kid" not in es256_key.public.jwk


def test_pem_round_trip(signing_key: SigningKey) -> None:
    pem = signing_key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    restored = SigningKey.from_pem(pem, signing_key.alg)
    assert restored.kid == signing_key.kid
    assert restored.alg == signing_key.alg
    assert restored.public_jwk() == signing_key.public_jwk()
    signing_key.public.verify(signing_key.alg, MESSAGE, restored.sign(MESSAGE))
    restored.public.verify(restored.alg, MESSAGE, signing_key.sign(MESSAGE))


def test_from_pem_rejects_an_alg_that_does_not_fit_the_key(es256_key: SigningKey) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        SigningKey.from_pem(es256_key.to_pem(), "RS256")


def test_from_pem_rejects_an_unsupported_key_type() -> None:
    pem = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKeyError):
        SigningKey.from_pem(pem, "EdDSA")


@pytest.mark.parametrize(
    "alg",
    ["none", "HS256", "ES512", "RS512", "es256", ""],
    ids=[
        "refuses to generate alg none",
        "refuses to generate an HMAC key",
        "refuses to generate ES512",
        "refuses to generate RS512",
        "refuses an alg in the wrong case",
        "refuses an empty alg",
    ],
)
def test_generate_rejects_unsupported_algorithms(alg: str) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        SigningKey.generate(alg)


@pytest.mark.parametrize(
    ("key_factory", "alg"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES384"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "EdDSA"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate, "ES256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "HS256"),
    ],
    ids=[
        "refuses a P-256 key for ES384",
        "refuses a P-256 key for RS256",
        "refuses a P-256 key for EdDSA",
        "refuses a P-384 key for ES256",
        "refuses an Ed25519 key for ES256",
        "refuses an HMAC alg for any key",
    ],
)
def test_signing_key_refuses_an_alg_that_does_not_fit(
    key_factory: Callable[[], ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey], alg: str
) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        SigningKey(key_factory(), alg)


def test_signing_key_refuses_an_rsa_key_for_es256(rs256_key: SigningKey) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        SigningKey.from_pem(rs256_key.to_pem(), "ES256")


def test_signing_key_refuses_a_small_rsa_key(small_rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidKeyError, match="2048"):
        SigningKey(small_rsa_key, "RS256")


def test_signing_key_refuses_an_unsupported_curve() -> None:
    with pytest.raises(InvalidKeyError, match="curve"):
        SigningKey(ec.generate_private_key(ec.SECP521R1()), "ES256")


def test_repr_never_shows_private_material(signing_key: SigningKey) -> None:
    text = repr(signing_key)
    assert text == f"SigningKey(alg={signing_key.alg!r}, kid={signing_key.kid!r})"
    assert "key=" not in repr(signing_key.public)


# --- PublicKey.verify -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg",
    ["ES384", "RS256", "PS256", "EdDSA", "HS256", "none"],
    ids=[
        "an ES256 key refuses ES384",
        "an ES256 key refuses RS256",
        "an ES256 key refuses PS256",
        "an ES256 key refuses EdDSA",
        "an ES256 key refuses HS256",
        "an ES256 key refuses alg none",
    ],
)
def test_es256_key_refuses_other_algorithms(es256_key: SigningKey, alg: str) -> None:
    # Even with a signature the key really made: the alg itself is what is refused.
    with pytest.raises(UnsupportedAlgorithmError):
        es256_key.public.verify(alg, MESSAGE, es256_key.sign(MESSAGE))


@pytest.mark.parametrize(
    "alg",
    ["ES256", "ES384", "EdDSA", "HS256"],
    ids=[
        "an RSA key refuses ES256",
        "an RSA key refuses ES384",
        "an RSA key refuses EdDSA",
        "an RSA key refuses HS256",
    ],
)
def test_rsa_key_refuses_other_algorithms(rs256_key: SigningKey, alg: str) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        rs256_key.public.verify(alg, MESSAGE, rs256_key.sign(MESSAGE))


@pytest.mark.parametrize(
    ("key_fixture", "alg"),
    [("eddsa_key", "ES256"), ("eddsa_key", "RS256"), ("es384_key", "ES256")],
    ids=[
        "an Ed25519 key refuses ES256",
        "an Ed25519 key refuses RS256",
        "an ES384 key refuses ES256",
    ],
)
def test_curve_keys_refuse_other_algorithms(
    key_fixture: str, alg: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(key_fixture)
    with pytest.raises(UnsupportedAlgorithmError):
        key.public.verify(alg, MESSAGE, key.sign(MESSAGE))


@pytest.mark.parametrize(
    "change",
    [
        lambda sig: sig[:-1],
        lambda sig: sig + b"\x00",
        lambda sig: b"",
        lambda sig: sig[:32],
    ],
    ids=[
        "rejects a 63-byte signature",
        "rejects a 65-byte signature",
        "rejects an empty signature",
        "rejects R without S",
    ],
)
def test_es256_rejects_a_signature_of_the_wrong_length(
    es256_key: SigningKey, change: Callable[[bytes], bytes]
) -> None:
    with pytest.raises(InvalidSignatureError, match="length"):
        es256_key.public.verify("ES256", MESSAGE, change(es256_key.sign(MESSAGE)))


def test_es256_rejects_a_der_encoded_signature(es256_key: SigningKey) -> None:
    # JWS uses fixed-length R||S (RFC 7518 §3.4), never the DER that most libraries emit.
    raw = es256_key.sign(MESSAGE)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    with pytest.raises(InvalidSignatureError):
        es256_key.public.verify("ES256", MESSAGE, der)


@pytest.mark.parametrize("size", [32, 48], ids=["P-256", "P-384"])
@pytest.mark.parametrize(
    ("r", "s"),
    [
        (b"\x01" * 64, b"\x7f" * 64),
        (b"\x80" * 64, b"\xff" * 64),
        (b"\x00" * 63 + b"\x01", b"\x00" * 63 + b"\x80"),
        (b"\x00" * 64, b"\x00" * 64),
        (b"\x00\x00\x81" + b"\x12" * 61, b"\x00" + b"\x7f" * 63),
    ],
    ids=[
        "plain values",
        "top bits set: a 0x00 keeps them positive",
        "leading zeros stripped",
        "zero",
        "leading zeros then a top bit set",
    ],
)
def test_der_signature_is_what_encode_dss_signature_makes(size: int, r: bytes, s: bytes) -> None:
    r, s = r[:size], s[:size]
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert _der_signature(r, s) == expected


def test_es384_rejects_an_es256_length_signature(es384_key: SigningKey) -> None:
    with pytest.raises(InvalidSignatureError, match="length"):
        es384_key.public.verify("ES384", MESSAGE, es384_key.sign(MESSAGE)[:64])


@pytest.mark.parametrize(
    "change",
    [lambda sig: sig[:-1], lambda sig: sig + b"\x00", lambda sig: b""],
    ids=[
        "rejects a signature one byte short",
        "rejects a signature one byte long",
        "rejects an empty signature",
    ],
)
def test_eddsa_and_rsa_reject_signatures_of_the_wrong_length(
    any_key: SigningKey, change: Callable[[bytes], bytes]
) -> None:
    with pytest.raises(InvalidSignatureError):
        any_key.public.verify(any_key.alg, MESSAGE, change(any_key.sign(MESSAGE)))


def test_tampered_signature_is_rejected(any_key: SigningKey) -> None:
    signature = any_key.sign(MESSAGE)
    with pytest.raises(InvalidSignatureError):
        any_key.public.verify(any_key.alg, MESSAGE, _flip_last_bit(signature))


def test_all_zero_signature_is_rejected(any_key: SigningKey) -> None:
    signature = any_key.sign(MESSAGE)
    with pytest.raises(InvalidSignatureError):
        any_key.public.verify(any_key.alg, MESSAGE, bytes(len(signature)))


def test_tampered_signing_input_is_rejected(any_key: SigningKey) -> None:
    signature = any_key.sign(MESSAGE)
    with pytest.raises(InvalidSignatureError):
        any_key.public.verify(any_key.alg, MESSAGE + b"x", signature)


def test_signature_by_another_key_is_rejected(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    with pytest.raises(InvalidSignatureError):
        es256_key.public.verify("ES256", MESSAGE, other_es256_key.sign(MESSAGE))


def test_rsa_padding_modes_are_not_interchangeable(
    rs256_key: SigningKey, ps256_key: SigningKey
) -> None:
    # The same RSA key pair: a PS256 signature is not an RS256 signature, and vice versa.
    assert rs256_key.public == ps256_key.public
    with pytest.raises(InvalidSignatureError):
        rs256_key.public.verify("RS256", MESSAGE, ps256_key.sign(MESSAGE))
    with pytest.raises(InvalidSignatureError):
        rs256_key.public.verify("PS256", MESSAGE, rs256_key.sign(MESSAGE))


def test_public_key_is_an_immutable_value(es256_key: SigningKey) -> None:
    public: PublicKey = es256_key.public
    with pytest.raises(AttributeError):
        public.thumbprint = "other"  # type: ignore[misc]
