"""deputize.keys.dpop: RFC 9449 proof creation, and each stateless check of §4.3.

Broken proofs are built by hand with :func:`_proof`, which signs any header and claims with a
real key, so every rejection below is caused by the one thing the test changed.  The ``htu``
normalisation table lives in ``test_dpop_htu_comparison.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pytest

from deputize.keys import (
    DPoPProof,
    InvalidClaimsError,
    InvalidProofError,
    JoseError,
    SigningKey,
    access_token_hash,
    create_proof,
    parse,
    verify_proof,
)
from deputize.keys._b64 import b64url_encode
from deputize.keys.dpop import ALGORITHMS, MAX_PROOF_LENGTH, bound_key

NOW = 1_700_000_000
METHOD = "POST"
URL = "https://as.example.com/token"
ACCESS_TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl"
RFC9449 = "rfc9449_dpop_proof.json"


def _segment(value: object) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _proof(
    key: SigningKey,
    *,
    header: Mapping[str, object] | None = None,
    claims: Mapping[str, object] | None = None,
    drop: Collection[str] = (),
    signer: SigningKey | None = None,
    signature: bytes | None = None,
) -> str:
    """A proof by ``key`` for METHOD URL at NOW, with members changed or dropped.

    ``drop`` names header or claim members to leave out; ``signer`` signs with another key
    than the one in the header ``jwk``; ``signature`` replaces the signature outright.
    """
    full_header: dict[str, object] = {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public.to_jwk()}
    full_header.update(header or {})
    full_claims: dict[str, object] = {"jti": "jti-1", "htm": METHOD, "htu": URL, "iat": NOW}
    full_claims.update(claims or {})
    h = _segment({k: v for k, v in full_header.items() if k not in drop})
    c = _segment({k: v for k, v in full_claims.items() if k not in drop})
    signing_input = f"{h}.{c}"
    if signature is None:
        signature = (signer or key).sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def _verify(proof: str, **kwargs: Any) -> DPoPProof:
    options: dict[str, Any] = {"method": METHOD, "url": URL, "now": NOW}
    options.update(kwargs)
    return verify_proof(proof, **options)


def _rejects(proof: str, match: str | None = None, **kwargs: Any) -> InvalidProofError:
    with pytest.raises(InvalidProofError, match=match) as info:
        _verify(proof, **kwargs)
    assert info.value.error == "invalid_dpop_proof"
    return info.value


# --- creating and verifying -------------------------------------------------------------------


def test_round_trip(any_key: SigningKey) -> None:
    proof = create_proof(any_key, METHOD, URL, now=NOW)
    result = _verify(proof)
    assert result.key == any_key.public
    assert result.jkt == any_key.kid == any_key.public.thumbprint
    assert result.iat == NOW
    assert result.nonce is None
    assert isinstance(result.jti, str)
    assert len(result.jti) >= 16


def test_round_trip_with_access_token_nonce_and_jkt(signing_key: SigningKey) -> None:
    proof = create_proof(
        signing_key,
        "GET",
        "https://rs.example/api",
        access_token=ACCESS_TOKEN,
        nonce="n-1",
        now=NOW,
    )
    result = _verify(
        proof,
        method="GET",
        url="https://rs.example/api",
        access_token=ACCESS_TOKEN,
        jkt=signing_key.kid,
    )
    assert result.nonce == "n-1"
    assert result.jkt == signing_key.kid


def test_created_proof_has_the_rfc9449_shape(es256_key: SigningKey) -> None:
    proof = create_proof(es256_key, METHOD, URL + "?q=1#frag", access_token=ACCESS_TOKEN, now=NOW)
    parsed = parse(proof, algorithms=ALGORITHMS, typ="dpop+jwt")
    # §4.2: typ, alg and the public jwk, and nothing that names a key by reference.
    assert dict(parsed.header) == {
        "alg": "ES256",
        "typ": "dpop+jwt",
        "jwk": dict(es256_key.public.jwk),
    }
    assert set(parsed.claims) == {"jti", "htm", "htu", "iat", "ath"}
    assert parsed.claims["htm"] == METHOD
    assert parsed.claims["htu"] == URL  # query and fragment dropped (§4.2)
    assert parsed.claims["iat"] == NOW
    assert parsed.claims["ath"] == access_token_hash(ACCESS_TOKEN)


def test_created_proof_truncates_a_fractional_now(es256_key: SigningKey) -> None:
    assert _verify(create_proof(es256_key, METHOD, URL, now=NOW + 0.9)).iat == NOW


def test_each_proof_gets_a_fresh_jti(es256_key: SigningKey) -> None:
    jtis = {_verify(create_proof(es256_key, METHOD, URL, now=NOW)).jti for _ in range(5)}
    assert len(jtis) == 5


def test_the_rfc9449_example_proof_verifies(load_vector: Callable[[str], dict[str, Any]]) -> None:
    vector = load_vector(RFC9449)
    result = verify_proof(
        vector["proof"],
        method=vector["htm"],
        url=vector["htu"],
        now=vector["iat"],
        jkt=vector["jkt"],
    )
    assert result.jti == vector["jti"]
    assert result.jkt == vector["jkt"]
    assert result.iat == vector["iat"]


def test_the_rfc9449_example_proof_is_stale_a_minute_later(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    vector = load_vector(RFC9449)
    with pytest.raises(InvalidProofError, match="iat"):
        verify_proof(vector["proof"], method="POST", url=vector["htu"], now=vector["iat"] + 61)


def test_access_token_hash_matches_the_rfc9449_example(
    load_vector: Callable[[str], dict[str, Any]],
) -> None:
    vector = load_vector(RFC9449)
    assert access_token_hash(vector["access_token"]) == vector["ath"]


def test_invalid_proof_error_is_a_jose_error() -> None:
    assert issubclass(InvalidProofError, JoseError)
    assert InvalidProofError("x").error == "invalid_dpop_proof"


# --- §4.3 checks 1-4: a single well-formed JWS with typ dpop+jwt ------------------------------


@pytest.mark.parametrize(
    "proof",
    ["", "not a jwt", "a.b", "a.b.c.d", "e30.e30.", "e30=.e30.AA"],
    ids=[
        "rejects an empty proof",
        "rejects text that is not a JWS",
        "rejects two segments",
        "rejects four segments",
        "rejects an empty header object",
        "rejects base64 padding",
    ],
)
def test_rejects_a_proof_that_is_not_a_jws(proof: str) -> None:
    _rejects(proof)


def test_rejects_an_oversized_proof(es256_key: SigningKey) -> None:
    proof = _proof(es256_key, claims={"padding": "x" * MAX_PROOF_LENGTH})
    _rejects(proof, match="too long")


@pytest.mark.parametrize(
    "typ",
    ["jwt", "JWT", "DPOP+JWT", "Dpop+Jwt", "application/dpop+jwt", "at+jwt", "", 1],
    ids=[
        "rejects typ jwt",
        "rejects typ JWT",
        "rejects DPOP+JWT because the typ must match exactly",
        "rejects a mixed-case typ",
        "rejects the application/ prefixed typ",
        "rejects an access token typ",
        "rejects an empty typ",
        "rejects a typ that is a number",
    ],
)
def test_rejects_the_wrong_typ(es256_key: SigningKey, typ: object) -> None:
    _rejects(_proof(es256_key, header={"typ": typ}), match="typ")


def test_rejects_a_missing_typ(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, drop={"typ"}), match="typ")


def test_rejects_crit(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, header={"crit": ["exp"], "exp": NOW}), match="critical")


# --- §4.3 check 5: asymmetric, allow-listed alg -----------------------------------------------


def test_rejects_alg_none(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, header={"alg": "none"}, signature=b""), match="alg")


def test_rejects_hs256(es256_key: SigningKey) -> None:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": es256_key.public.to_jwk()}
    claims = {"jti": "jti-1", "htm": METHOD, "htu": URL, "iat": NOW}
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    secret = json.dumps(es256_key.public.to_jwk()).encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    _rejects(f"{signing_input}.{b64url_encode(mac)}", match="alg")


def test_rejects_hs256_even_if_the_caller_allows_it(es256_key: SigningKey) -> None:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": es256_key.public.to_jwk()}
    claims = {"jti": "jti-1", "htm": METHOD, "htu": URL, "iat": NOW}
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    mac = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
    _rejects(f"{signing_input}.{b64url_encode(mac)}", algorithms=["HS256"])


def test_rejects_an_alg_the_caller_does_not_allow(eddsa_key: SigningKey) -> None:
    _rejects(create_proof(eddsa_key, METHOD, URL, now=NOW), match="alg", algorithms=["ES256"])


def test_rejects_an_alg_that_does_not_fit_the_jwk(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, header={"alg": "ES384"}), match="alg")


def test_rejects_a_ps256_signature_labelled_rs256(ps256_key: SigningKey) -> None:
    _rejects(_proof(ps256_key, header={"alg": "RS256"}), match="signature")


# --- §4.3 checks 6-7: the jwk header is a public key and the signature is by it ---------------


@pytest.mark.parametrize(
    "member",
    ["d", "p", "k"],
    ids=[
        "rejects a jwk carrying the private d",
        "rejects a jwk carrying an RSA prime",
        "rejects a jwk carrying a symmetric k",
    ],
)
def test_rejects_a_jwk_with_private_members(es256_key: SigningKey, member: str) -> None:
    jwk = {**es256_key.public.to_jwk(), member: "AAAA"}
    _rejects(_proof(es256_key, header={"jwk": jwk}), match="private")


def test_rejects_a_missing_jwk(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, drop={"jwk"}))


@pytest.mark.parametrize(
    "jwk",
    ["a string", ["EC"], {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "EC", "crv": "P-256"}],
    ids=[
        "rejects a jwk that is a string",
        "rejects a jwk that is an array",
        "rejects a symmetric jwk",
        "rejects an incomplete jwk",
    ],
)
def test_rejects_an_unusable_jwk(es256_key: SigningKey, jwk: object) -> None:
    _rejects(_proof(es256_key, header={"jwk": jwk}))


def test_rejects_a_kid_in_place_of_a_jwk(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, header={"kid": es256_key.kid}, drop={"jwk"}))


def test_rejects_a_signature_by_another_key(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    _rejects(_proof(es256_key, signer=other_es256_key), match="signature")


def test_rejects_a_tampered_claim(es256_key: SigningKey) -> None:
    header, _, signature = create_proof(es256_key, "GET", URL, now=NOW).split(".")
    claims = _segment({"jti": "jti-1", "htm": METHOD, "htu": URL, "iat": NOW})
    _rejects(f"{header}.{claims}.{signature}", match="signature")


# --- §4.3 check 8: htm ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("htm", "method"),
    [("GET", "POST"), ("post", "POST"), ("POST", "post"), (" POST", "POST"), ("POST ", "POST")],
    ids=[
        "rejects another method",
        "rejects post for POST because methods are case-sensitive",
        "rejects POST for post",
        "rejects a leading space",
        "rejects a trailing space",
    ],
)
def test_rejects_an_htm_mismatch(es256_key: SigningKey, htm: str, method: str) -> None:
    _rejects(_proof(es256_key, claims={"htm": htm}), match="htm", method=method)


@pytest.mark.parametrize(
    "htm",
    [None, ["POST"], 1],
    ids=["rejects a missing htm", "rejects an array", "rejects a number"],
)
def test_rejects_a_malformed_htm(es256_key: SigningKey, htm: object) -> None:
    proof = (
        _proof(es256_key, drop={"htm"}) if htm is None else _proof(es256_key, claims={"htm": htm})
    )
    _rejects(proof, match="htm")


# --- §4.3 check 9: htu (the normalisation table is in test_dpop_htu_comparison.py) ------------


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example.com/other",
        "https://as.example.com/token/",
        "https://as.example.com/Token",
        "https://evil.example.com/token",
        "https://as.example.com.evil.example/token",
        "http://as.example.com/token",
        "https://as.example.com:8443/token",
    ],
    ids=[
        "rejects another path",
        "rejects a trailing slash",
        "rejects a path in another case",
        "rejects another host",
        "rejects a host with the expected one as a prefix",
        "rejects another scheme",
        "rejects another port",
    ],
)
def test_rejects_an_htu_mismatch(es256_key: SigningKey, htu: str) -> None:
    _rejects(_proof(es256_key, claims={"htu": htu}), match="htu")


@pytest.mark.parametrize(
    "htu",
    [None, 1, ["https://as.example.com/token"], "", "/token"],
    ids=[
        "rejects a missing htu",
        "rejects a number",
        "rejects an array",
        "rejects an empty htu",
        "rejects a relative htu",
    ],
)
def test_rejects_a_malformed_htu(es256_key: SigningKey, htu: object) -> None:
    proof = (
        _proof(es256_key, drop={"htu"}) if htu is None else _proof(es256_key, claims={"htu": htu})
    )
    _rejects(proof, match="htu")


# --- §4.3 check 10-11: iat within the window --------------------------------------------------


@pytest.mark.parametrize(
    "iat",
    [NOW - 60, NOW + 60, NOW],
    ids=[
        "accepts a proof exactly max_age old",
        "accepts a proof exactly max_age ahead",
        "accepts a proof made now",
    ],
)
def test_accepts_iat_within_the_window(es256_key: SigningKey, iat: int) -> None:
    assert _verify(_proof(es256_key, claims={"iat": iat})).iat == iat


@pytest.mark.parametrize(
    ("iat", "kwargs"),
    [
        (NOW - 61, {}),
        (NOW + 61, {}),
        (NOW - 3600, {}),
        (0, {}),
        (NOW - 11, {"max_age": 10}),
        (NOW + 11, {"max_age": 10}),
    ],
    ids=[
        "rejects a proof a second too old",
        "rejects a proof a second too far in the future",
        "rejects a proof an hour old",
        "rejects iat zero",
        "rejects a proof older than a custom max_age",
        "rejects a proof further ahead than a custom max_age",
    ],
)
def test_rejects_iat_outside_the_window(
    es256_key: SigningKey, iat: int, kwargs: dict[str, Any]
) -> None:
    _rejects(_proof(es256_key, claims={"iat": iat}), match="window", **kwargs)


@pytest.mark.parametrize(
    "iat",
    [str(NOW), True, False, None, [NOW], {"t": NOW}],
    ids=[
        "rejects a string iat",
        "rejects iat true",
        "rejects iat false",
        "rejects iat null",
        "rejects an array iat",
        "rejects an object iat",
    ],
)
def test_rejects_an_iat_that_is_not_a_number(es256_key: SigningKey, iat: object) -> None:
    _rejects(_proof(es256_key, claims={"iat": iat}), match="numeric iat")


@pytest.mark.parametrize("iat", [10**400, -(10**400)], ids=["too large", "too small"])
def test_rejects_an_iat_no_float_holds(es256_key: SigningKey, iat: int) -> None:
    """Legal JSON; against a float clock (a resource server's) it would overflow."""
    proof = _proof(es256_key, claims={"iat": iat})
    with pytest.raises(InvalidProofError, match="numeric iat"):
        verify_proof(proof, method="POST", url=URL, now=NOW + 0.25)


def test_accepts_a_fractional_iat(es256_key: SigningKey) -> None:
    """RFC 7519 NumericDate may be fractional; the proof's iat is kept in whole seconds."""
    proof = verify_proof(
        _proof(es256_key, claims={"iat": NOW + 0.5}), method="POST", url=URL, now=NOW
    )
    assert proof.iat == NOW


def test_rejects_a_missing_iat(es256_key: SigningKey) -> None:
    _rejects(_proof(es256_key, drop={"iat"}), match="iat")


# --- jti (§4.2; the replay check itself is the caller's) --------------------------------------


@pytest.mark.parametrize(
    "jti",
    [None, "", "x" * 257, 7, ["jti-1"]],
    ids=[
        "rejects a missing jti",
        "rejects an empty jti",
        "rejects a jti over 256 characters",
        "rejects a numeric jti",
        "rejects an array jti",
    ],
)
def test_rejects_a_bad_jti(es256_key: SigningKey, jti: object) -> None:
    proof = (
        _proof(es256_key, drop={"jti"}) if jti is None else _proof(es256_key, claims={"jti": jti})
    )
    _rejects(proof, match="jti")


def test_accepts_a_jti_of_exactly_256_characters(es256_key: SigningKey) -> None:
    assert _verify(_proof(es256_key, claims={"jti": "x" * 256})).jti == "x" * 256


# --- nonce (§8, §9; comparing it is the caller's) ---------------------------------------------


def test_returns_the_nonce_for_the_caller_to_check(es256_key: SigningKey) -> None:
    assert _verify(create_proof(es256_key, METHOD, URL, nonce="server-nonce", now=NOW)).nonce == (
        "server-nonce"
    )


@pytest.mark.parametrize(
    "nonce",
    [7, ["n"], "n" * 513],
    ids=[
        "rejects a numeric nonce",
        "rejects an array nonce",
        "rejects a nonce over 512 characters",
    ],
)
def test_rejects_a_bad_nonce(es256_key: SigningKey, nonce: object) -> None:
    _rejects(_proof(es256_key, claims={"nonce": nonce}), match="nonce")


# --- §4.3 check 12: ath -----------------------------------------------------------------------


def test_rejects_an_ath_for_another_token(es256_key: SigningKey) -> None:
    proof = create_proof(es256_key, METHOD, URL, access_token="another-token", now=NOW)
    _rejects(proof, match="ath", access_token=ACCESS_TOKEN)


def test_rejects_a_missing_ath_when_a_token_is_presented(es256_key: SigningKey) -> None:
    _rejects(create_proof(es256_key, METHOD, URL, now=NOW), match="ath", access_token=ACCESS_TOKEN)


@pytest.mark.parametrize(
    "ath",
    [
        lambda token: 7,
        lambda token: access_token_hash(token) + "=",
        lambda token: access_token_hash(token).upper(),
        lambda token: b64url_encode(hashlib.sha256(token.encode()).digest()[:16]),
        lambda token: b64url_encode(hashlib.sha384(token.encode()).digest()),
        lambda token: token,
    ],
    ids=[
        "rejects a numeric ath",
        "rejects a padded ath",
        "rejects an ath in another case",
        "rejects a truncated hash",
        "rejects a SHA-384 hash",
        "rejects the token itself in place of its hash",
    ],
)
def test_rejects_a_malformed_ath(es256_key: SigningKey, ath: Callable[[str], object]) -> None:
    _rejects(
        _proof(es256_key, claims={"ath": ath(ACCESS_TOKEN)}), match="ath", access_token=ACCESS_TOKEN
    )


def test_ath_is_not_checked_without_an_access_token(es256_key: SigningKey) -> None:
    # At the token endpoint there is no access token yet; a stray ath is harmless there.
    _verify(create_proof(es256_key, METHOD, URL, access_token="whatever", now=NOW))


def test_a_non_ascii_access_token_fails_as_an_invalid_proof(es256_key: SigningKey) -> None:
    proof = create_proof(es256_key, METHOD, URL, access_token=ACCESS_TOKEN, now=NOW)
    _rejects(proof, access_token="tök€n")


# --- §4.3 check 13: the proof key is the key the token is bound to ----------------------------


def test_rejects_a_proof_by_a_key_other_than_cnf_jkt(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    proof = create_proof(other_es256_key, METHOD, URL, access_token=ACCESS_TOKEN, now=NOW)
    _rejects(proof, match="jkt", access_token=ACCESS_TOKEN, jkt=es256_key.kid)


@pytest.mark.parametrize(
    "jkt",
    [lambda kid: "", lambda kid: kid[:-1], lambda kid: kid + "=", lambda kid: kid.swapcase()],
    ids=[
        "rejects an empty jkt",
        "rejects a truncated jkt",
        "rejects a padded jkt",
        "rejects a jkt in another case",
    ],
)
def test_rejects_a_jkt_that_is_not_exactly_the_thumbprint(
    es256_key: SigningKey, jkt: Callable[[str], str]
) -> None:
    _rejects(create_proof(es256_key, METHOD, URL, now=NOW), match="jkt", jkt=jkt(es256_key.kid))


def test_jkt_is_the_thumbprint_of_the_header_jwk_not_a_header_kid(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    # A kid naming the bound key does not make a proof by another key acceptable.
    proof = _proof(other_es256_key, header={"kid": es256_key.kid})
    _rejects(proof, match="jkt", jkt=es256_key.kid)


# --- the binding a token carries (§6.1) -------------------------------------------------------


def test_bound_key_reads_cnf_jkt() -> None:
    assert bound_key({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}) == (
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    )
    assert bound_key({"sub": "alice"}) is None  # a bearer token


@pytest.mark.parametrize(
    "cnf",
    ["abc", [], {}, {"x5t#S256": "abc"}, {"jkt": 7}, {"jkt": ""}, {"jkt": "x" * 129}],
    ids=["string", "list", "empty", "other method", "number", "empty jkt", "too long"],
)
def test_bound_key_never_reads_a_malformed_binding_as_none(cnf: object) -> None:
    """A ``cnf`` that is there but unusable is refused: read as "unbound", it would turn a
    key-bound token into a bearer token."""
    with pytest.raises(InvalidClaimsError, match="cnf"):
        bound_key({"cnf": cnf})
