"""deputize.keys.jwt: compact JWS sign / parse / verify, and the RFC 7519 claim checks.

Malformed tokens are built by hand from base64url segments, so each case breaks exactly one
thing; :func:`_forge` signs an arbitrary header and payload with a real key, so a rejection
can never be blamed on a bad signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from deputize.keys import (
    SUPPORTED_ALGORITHMS,
    InvalidClaimsError,
    InvalidSignatureError,
    MalformedError,
    ParsedJWT,
    SigningKey,
    UnsupportedAlgorithmError,
    check_audience,
    check_times,
    parse,
    sign,
)
from deputize.keys._b64 import b64url_decode, b64url_encode
from deputize.keys.errors import shown
from deputize.keys.jwt import MAX_TOKEN_LENGTH, finite_number, normalize_typ, string_claim

TYP = "at+jwt"
NOW = 1_700_000_000
CLAIMS: dict[str, Any] = {"iss": "https://as.example", "sub": "agent-1", "exp": NOW + 300}
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _segment(value: object) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _forge(
    header: Mapping[str, Any] | str, payload: Mapping[str, Any] | str, key: SigningKey
) -> str:
    """A compact JWS over any header and payload (dicts, or ready-made segments), really signed."""
    h = header if isinstance(header, str) else _segment(header)
    p = payload if isinstance(payload, str) else _segment(payload)
    signing_input = f"{h}.{p}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def _header(key: SigningKey, **changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": key.alg, "typ": TYP, "kid": key.kid}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


def _parse(token: str, **kwargs: Any) -> ParsedJWT:
    options: dict[str, Any] = {"algorithms": SUPPORTED_ALGORITHMS, "typ": TYP}
    options.update(kwargs)
    return parse(token, **options)


def _non_canonical(segment: str) -> str:
    """The same bytes with a non-zero unused trailing bit (only possible when len % 4 != 0)."""
    assert len(segment) % 4 in (2, 3)
    last = B64URL_ALPHABET.index(segment[-1])
    return segment[:-1] + B64URL_ALPHABET[last | 1]


# --- round trip -------------------------------------------------------------------------------


def test_sign_parse_verify_round_trip(signing_key: SigningKey) -> None:
    token = sign(CLAIMS, signing_key, typ=TYP)
    parsed = parse(token, algorithms=[signing_key.alg], typ=TYP)
    assert parsed.alg == signing_key.alg
    assert parsed.kid == signing_key.kid
    assert dict(parsed.header) == {"alg": signing_key.alg, "typ": TYP, "kid": signing_key.kid}
    assert dict(parsed.verify(signing_key.public)) == CLAIMS


def test_every_supported_algorithm_round_trips(any_key: SigningKey) -> None:
    token = sign(CLAIMS, any_key, typ=TYP)
    assert dict(_parse(token).verify(any_key.public)) == CLAIMS


def test_signing_input_is_the_first_two_segments(es256_key: SigningKey) -> None:
    token = sign(CLAIMS, es256_key, typ=TYP)
    parsed = _parse(token)
    header, payload, signature = token.split(".")
    assert parsed.signing_input == f"{header}.{payload}".encode()
    assert parsed.signature == b64url_decode(signature)


def test_sign_without_kid(es256_key: SigningKey) -> None:
    parsed = _parse(sign(CLAIMS, es256_key, typ=TYP, include_kid=False))
    assert "kid" not in parsed.header
    assert parsed.kid is None


def test_sign_adds_extra_headers(es256_key: SigningKey) -> None:
    parsed = _parse(sign(CLAIMS, es256_key, typ=TYP, headers={"x-extra": "1"}))
    assert parsed.header["x-extra"] == "1"


def test_non_ascii_claims_round_trip(es256_key: SigningKey) -> None:
    claims = {**CLAIMS, "name": "Zoë 🤖"}
    assert _parse(sign(claims, es256_key, typ=TYP)).verify(es256_key.public)["name"] == "Zoë 🤖"


def test_a_kid_that_is_not_a_string_reads_as_none(es256_key: SigningKey) -> None:
    assert _parse(_forge(_header(es256_key, kid=7), CLAIMS, es256_key)).kid is None


def test_verify_with_another_key_of_the_same_type_fails(
    es256_key: SigningKey, other_es256_key: SigningKey
) -> None:
    parsed = _parse(sign(CLAIMS, es256_key, typ=TYP))
    with pytest.raises(InvalidSignatureError):
        parsed.verify(other_es256_key.public)


def test_verify_with_a_key_of_another_type_fails(
    es256_key: SigningKey, rs256_key: SigningKey
) -> None:
    parsed = _parse(sign(CLAIMS, es256_key, typ=TYP))
    with pytest.raises(UnsupportedAlgorithmError):
        parsed.verify(rs256_key.public)


def test_swapped_payload_fails_verification(es256_key: SigningKey) -> None:
    header, _, signature = sign(CLAIMS, es256_key, typ=TYP).split(".")
    forged = f"{header}.{_segment({**CLAIMS, 'sub': 'admin'})}.{signature}"
    with pytest.raises(InvalidSignatureError):
        _parse(forged).verify(es256_key.public)


def test_empty_signature_fails_verification(es256_key: SigningKey) -> None:
    header, payload, _ = sign(CLAIMS, es256_key, typ=TYP).split(".")
    parsed = _parse(f"{header}.{payload}.")
    assert parsed.signature == b""
    with pytest.raises(InvalidSignatureError):
        parsed.verify(es256_key.public)


# --- parse: algorithms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg",
    ["none", "None", "NONE", "nOnE"],
    ids=[
        "rejects alg none",
        "rejects alg None",
        "rejects alg NONE",
        "rejects alg none in mixed case",
    ],
)
def test_parse_rejects_alg_none(alg: str, es256_key: SigningKey) -> None:
    token = f"{_segment({'alg': alg, 'typ': TYP})}.{_segment(CLAIMS)}."
    with pytest.raises(UnsupportedAlgorithmError):
        _parse(token)


@pytest.mark.parametrize(
    ("alg", "named"),
    [
        ([["HS256"]], "alg (an array) is not allowed"),
        ({"a": 1}, "alg (an object) is not allowed"),
        (None, "alg (null) is not allowed"),
        ("H" * 5000, "alg 'HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH'... is not allowed"),
    ],
    ids=["an array", "an object", "null", "a long string"],
)
def test_a_refused_alg_is_named_not_echoed(alg: object, named: str) -> None:
    """The message names what the header holds without repeating it: the repr of a list
    nested a thousand deep (which the decoder accepts) overflows the stack."""
    token = f"{_segment({'alg': alg, 'typ': TYP})}.{_segment(CLAIMS)}."
    with pytest.raises(UnsupportedAlgorithmError) as caught:
        _parse(token)
    assert caught.value.description == named


def test_a_refused_typ_is_named_not_echoed(es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, typ=[[["at+jwt"]]]), CLAIMS, es256_key)
    with pytest.raises(InvalidClaimsError) as caught:
        _parse(token)
    assert caught.value.description == "unexpected JWT typ (an array)"


def test_shown_never_recurses() -> None:
    nested: list[Any] = []
    for _ in range(100_000):
        nested = [nested]
    assert shown(nested) == "(an array)"
    assert shown(True) == "(a boolean)"
    assert shown("ES256") == "'ES256'"


def test_alg_none_on_the_allow_list_still_never_verifies(es256_key: SigningKey) -> None:
    token = f"{_segment({'alg': 'none', 'typ': TYP})}.{_segment(CLAIMS)}."
    parsed = _parse(token, algorithms=["none"])
    with pytest.raises(UnsupportedAlgorithmError):
        parsed.verify(es256_key.public)


def _hmac_forgery(rs256_key: SigningKey, alg: str) -> str:
    """The classic confusion attack: HMAC "signed" with the RSA public key's PEM as secret."""
    secret = rs256_key.public.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{_segment({'alg': alg, 'typ': TYP, 'kid': rs256_key.kid})}.{_segment(CLAIMS)}"
    mac = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


@pytest.mark.parametrize(
    "alg",
    ["HS256", "HS384", "HS512"],
    ids=[
        "rejects HS256 keyed with the RSA public key",
        "rejects HS384 keyed with the RSA public key",
        "rejects HS512 keyed with the RSA public key",
    ],
)
def test_parse_rejects_hmac_with_the_public_key_as_secret(rs256_key: SigningKey, alg: str) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        _parse(_hmac_forgery(rs256_key, alg))


def test_hmac_on_the_allow_list_still_never_verifies(rs256_key: SigningKey) -> None:
    # A careless caller lists HS256: parse lets it through, but no key verifies an HMAC.
    parsed = _parse(_hmac_forgery(rs256_key, "HS256"), algorithms=["HS256"])
    assert parsed.alg == "HS256"
    with pytest.raises(UnsupportedAlgorithmError):
        parsed.verify(rs256_key.public)


@pytest.mark.parametrize("alg", ["ES", "S256", ""], ids=["alg ES", "alg S256", "an empty alg"])
def test_parse_treats_a_bare_string_allow_list_as_one_algorithm(
    alg: str, es256_key: SigningKey
) -> None:
    token = _forge(_header(es256_key, alg=alg), CLAIMS, es256_key)
    with pytest.raises(UnsupportedAlgorithmError):
        parse(token, algorithms="ES256", typ=TYP)


def test_parse_rejects_an_alg_off_the_allow_list(es256_key: SigningKey) -> None:
    token = sign(CLAIMS, es256_key, typ=TYP)
    with pytest.raises(UnsupportedAlgorithmError):
        parse(token, algorithms=["RS256", "EdDSA"], typ=TYP)


def test_parse_rejects_everything_with_an_empty_allow_list(es256_key: SigningKey) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        parse(sign(CLAIMS, es256_key, typ=TYP), algorithms=[], typ=TYP)


@pytest.mark.parametrize(
    "alg",
    [None, "es256", "ES256 ", ["ES256"], 256, ""],
    ids=[
        "rejects a header without alg",
        "rejects alg in the wrong case",
        "rejects alg with trailing whitespace",
        "rejects alg as an array",
        "rejects alg as a number",
        "rejects an empty alg",
    ],
)
def test_parse_rejects_malformed_alg(alg: object, es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, alg=alg), CLAIMS, es256_key)
    with pytest.raises(UnsupportedAlgorithmError):
        _parse(token)


# --- parse: typ -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typ",
    ["JWT", "jwt", "dpop+jwt", "at+jwt+x", "text/at+jwt", "xapplication/at+jwt", "", 1, ["at+jwt"]],
    ids=[
        "rejects typ JWT",
        "rejects typ jwt",
        "rejects another explicit type",
        "rejects a typ with a suffix",
        "rejects another media type tree",
        "rejects a typ that only contains application/",
        "rejects an empty typ",
        "rejects a typ that is a number",
        "rejects a typ that is an array",
    ],
)
def test_parse_rejects_the_wrong_typ(typ: object, es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, typ=typ), CLAIMS, es256_key)
    with pytest.raises(InvalidClaimsError, match="typ"):
        _parse(token)


def test_parse_rejects_a_missing_typ(es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, typ=None), CLAIMS, es256_key)
    with pytest.raises(InvalidClaimsError, match="typ"):
        _parse(token)


def test_parse_accepts_a_missing_typ_when_empty_is_listed(es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, typ=None), CLAIMS, es256_key)
    assert "typ" not in _parse(token, typ=[TYP, ""]).header
    assert "typ" not in _parse(token, typ="").header


def test_parse_still_checks_a_present_typ_when_empty_is_listed(es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, typ="JWT"), CLAIMS, es256_key)
    with pytest.raises(InvalidClaimsError):
        _parse(token, typ=[TYP, ""])


def test_parse_skips_the_typ_check_when_typ_is_none(es256_key: SigningKey) -> None:
    for typ in (None, "JWT", "anything"):
        token = _forge(_header(es256_key, typ=typ), CLAIMS, es256_key)
        assert dict(_parse(token, typ=None).claims) == CLAIMS


@pytest.mark.parametrize(
    ("header_typ", "accepted"),
    [
        ("AT+JWT", "at+jwt"),
        ("At+Jwt", "at+jwt"),
        ("application/at+jwt", "at+jwt"),
        ("APPLICATION/AT+JWT", "at+jwt"),
        ("at+jwt", "application/at+jwt"),
        ("at+jwt", "AT+JWT"),
        ("client-authentication+jwt", ["at+jwt", "client-authentication+jwt"]),
    ],
    ids=[
        "accepts typ in upper case",
        "accepts typ in mixed case",
        "accepts typ with the application/ prefix",
        "accepts typ with the prefix in upper case",
        "accepts a bare typ when the caller lists the prefixed form",
        "accepts a caller who spells the typ in upper case",
        "accepts any one of several listed types",
    ],
)
def test_parse_compares_typ_as_rfc7515_says(
    header_typ: str, accepted: str | list[str], es256_key: SigningKey
) -> None:
    token = _forge(_header(es256_key, typ=header_typ), CLAIMS, es256_key)
    assert _parse(token, typ=accepted).header["typ"] == header_typ


@pytest.mark.parametrize(
    ("typ", "normalized"),
    [
        ("at+jwt", "at+jwt"),
        ("AT+JWT", "at+jwt"),
        ("application/at+jwt", "at+jwt"),
        ("Application/At+JWT", "at+jwt"),
        ("application/", ""),
        ("text/plain", "text/plain"),
    ],
    ids=[
        "leaves a bare lower-case type alone",
        "lower-cases a type",
        "drops the application/ prefix",
        "drops the prefix in any case",
        "drops the prefix even when nothing follows",
        "keeps other media type trees",
    ],
)
def test_normalize_typ(typ: str, normalized: str) -> None:
    assert normalize_typ(typ) == normalized


# --- parse: header extensions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "crit",
    [["exp"], [], ["b64"], "exp"],
    ids=[
        "rejects crit naming a claim",
        "rejects even an empty crit",
        "rejects crit b64 (RFC 7797)",
        "rejects a crit that is not even an array",
    ],
)
def test_parse_rejects_crit(crit: object, es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key, crit=crit, exp=NOW), CLAIMS, es256_key)
    with pytest.raises(MalformedError, match="critical"):
        _parse(token)


# --- parse: structure -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reshape",
    [
        lambda t: "",
        lambda t: t.split(".")[0],
        lambda t: ".".join(t.split(".")[:2]),
        lambda t: t + ".",
        lambda t: t + "." + t.split(".")[2],
        lambda t: ".".join([*t.split("."), "AA", "AA"]),
        lambda t: t.replace(".", ".."),
    ],
    ids=[
        "rejects an empty string",
        "rejects one segment",
        "rejects two segments",
        "rejects four segments with an empty fourth",
        "rejects four segments",
        "rejects five segments (a JWE)",
        "rejects empty segments between the dots",
    ],
)
def test_parse_rejects_the_wrong_number_of_segments(
    reshape: Callable[[str], str], es256_key: SigningKey
) -> None:
    with pytest.raises(MalformedError):
        _parse(reshape(sign(CLAIMS, es256_key, typ=TYP)))


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"", b'{"alg":"ES256"', b"\xff\xfe", b'{"alg": "ES256",}'],
    ids=[
        "rejects a header that is not JSON",
        "rejects an empty header",
        "rejects truncated JSON",
        "rejects a header that is not UTF-8",
        "rejects a trailing comma",
    ],
)
def test_parse_rejects_a_header_that_is_not_json(raw: bytes, es256_key: SigningKey) -> None:
    token = _forge(b64url_encode(raw), CLAIMS, es256_key)
    with pytest.raises(MalformedError, match="header"):
        _parse(token)


@pytest.mark.parametrize(
    "header",
    [["ES256"], "ES256", None, 256],
    ids=[
        "rejects a header that is a JSON array",
        "rejects a header that is a JSON string",
        "rejects a header that is JSON null",
        "rejects a header that is a JSON number",
    ],
)
def test_parse_rejects_a_header_that_is_not_an_object(
    header: object, es256_key: SigningKey
) -> None:
    token = _forge(_segment(header), CLAIMS, es256_key)
    with pytest.raises(MalformedError, match="header is not a JSON object"):
        _parse(token)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"", b'{"sub":', b'{"sub":"\xff"}'],
    ids=[
        "rejects a payload that is not JSON",
        "rejects an empty payload",
        "rejects truncated JSON",
        "rejects a payload that is not UTF-8",
    ],
)
def test_parse_rejects_a_payload_that_is_not_json(raw: bytes, es256_key: SigningKey) -> None:
    token = _forge(_header(es256_key), b64url_encode(raw), es256_key)
    with pytest.raises(MalformedError, match="payload"):
        _parse(token)


@pytest.mark.parametrize(
    "payload",
    [[CLAIMS], [], "a string", 42, None, True],
    ids=[
        "rejects a payload that is a JSON array",
        "rejects a payload that is an empty array",
        "rejects a payload that is a JSON string",
        "rejects a payload that is a JSON number",
        "rejects a payload that is JSON null",
        "rejects a payload that is JSON true",
    ],
)
def test_parse_rejects_a_payload_that_is_not_an_object(
    payload: object, es256_key: SigningKey
) -> None:
    token = _forge(_header(es256_key), _segment(payload), es256_key)
    with pytest.raises(MalformedError, match="payload is not a JSON object"):
        _parse(token)


def test_parse_rejects_deeply_nested_json(es256_key: SigningKey) -> None:
    payload = b64url_encode(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}")
    token = _forge(_header(es256_key), payload, es256_key)
    assert len(token) < MAX_TOKEN_LENGTH
    with pytest.raises(MalformedError):
        _parse(token)


@pytest.mark.parametrize(
    "index",
    [0, 1, 2],
    ids=[
        "rejects padding on the header",
        "rejects padding on the payload",
        "rejects padding on the signature",
    ],
)
def test_parse_rejects_padding(index: int, es256_key: SigningKey) -> None:
    parts = sign(CLAIMS, es256_key, typ=TYP).split(".")
    parts[index] += "=" * (-len(parts[index]) % 4 or 4)
    with pytest.raises(MalformedError, match="base64url"):
        _parse(".".join(parts))


@pytest.mark.parametrize(
    ("index", "change"),
    [
        (0, lambda s: s.replace("e", "+", 1)),
        (1, lambda s: s[:5] + "/" + s[6:]),
        (2, lambda s: " " + s),
        (2, lambda s: s + "\n"),
        (1, lambda s: s[:5] + "\u0430" + s[6:]),
    ],
    ids=[
        "rejects + from the standard alphabet in the header",
        "rejects / from the standard alphabet in the payload",
        "rejects leading whitespace",
        "rejects a trailing newline",
        "rejects a non-ASCII look-alike character",
    ],
)
def test_parse_rejects_characters_outside_base64url(
    index: int, change: Callable[[str], str], es256_key: SigningKey
) -> None:
    parts = sign(CLAIMS, es256_key, typ=TYP).split(".")
    assert "e" in parts[0]
    parts[index] = change(parts[index])
    with pytest.raises(MalformedError, match="base64url"):
        _parse(".".join(parts))


def test_parse_rejects_non_canonical_base64url_in_the_signature(es256_key: SigningKey) -> None:
    header, payload, signature = sign(CLAIMS, es256_key, typ=TYP).split(".")
    assert len(signature) == 86  # 64 bytes: the last character carries 4 unused bits
    twin = _non_canonical(signature)
    # A lenient decoder maps both spellings to the same bytes; the strict one must refuse.
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(signature + "==")
    with pytest.raises(MalformedError, match="non-canonical"):
        _parse(f"{header}.{payload}.{twin}")


def test_parse_rejects_non_canonical_base64url_in_the_payload(es256_key: SigningKey) -> None:
    for padding in ("", "x", "xx"):
        payload = _segment({**CLAIMS, "p": padding})
        if len(payload) % 4:
            break
    token = _forge(_header(es256_key), _non_canonical(payload), es256_key)
    with pytest.raises(MalformedError, match="non-canonical"):
        _parse(token)


def test_parse_rejects_a_segment_whose_length_is_impossible(es256_key: SigningKey) -> None:
    header, payload, signature = sign(CLAIMS, es256_key, typ=TYP).split(".")
    signature += "A" * (5 - len(signature) % 4)  # length % 4 == 1 encodes no byte string
    assert len(signature) % 4 == 1
    with pytest.raises(MalformedError, match="base64url"):
        _parse(f"{header}.{payload}.{signature}")


def test_parse_rejects_a_token_over_the_default_limit(es256_key: SigningKey) -> None:
    token = sign({**CLAIMS, "blob": "x" * MAX_TOKEN_LENGTH}, es256_key, typ=TYP)
    with pytest.raises(MalformedError, match="too long"):
        _parse(token)


def test_parse_honours_max_length_to_the_character(es256_key: SigningKey) -> None:
    token = sign(CLAIMS, es256_key, typ=TYP)
    assert _parse(token, max_length=len(token)).claims == CLAIMS
    with pytest.raises(MalformedError, match="too long"):
        _parse(token, max_length=len(token) - 1)


def test_parse_rejects_bytes(es256_key: SigningKey) -> None:
    token = sign(CLAIMS, es256_key, typ=TYP).encode()
    with pytest.raises(MalformedError):
        parse(token, algorithms=SUPPORTED_ALGORITHMS, typ=TYP)  # type: ignore[arg-type]


# --- check_times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "kwargs"),
    [
        ({"exp": NOW + 1}, {}),
        ({"exp": NOW + 0.5}, {}),
        ({"exp": NOW - 5}, {"leeway": 10}),
        ({"exp": NOW + 60, "nbf": NOW}, {}),
        ({"exp": NOW + 60, "nbf": NOW + 5}, {"leeway": 5}),
        ({"exp": NOW + 60, "iat": NOW}, {"require_iat": True}),
        ({"exp": NOW + 60, "iat": NOW + 5}, {"leeway": 5}),
        ({}, {"require_exp": False}),
        ({"exp": NOW + 60}, {"max_lifetime": 60}),
        ({"exp": NOW + 65}, {"max_lifetime": 60, "leeway": 5}),
        ({"exp": None}, {"require_exp": False}),
    ],
    ids=[
        "accepts exp one second ahead",
        "accepts a fractional exp",
        "accepts a recent exp within the leeway",
        "accepts nbf equal to now",
        "accepts nbf ahead by no more than the leeway",
        "accepts iat equal to now",
        "accepts iat ahead by no more than the leeway",
        "accepts no exp when it is not required",
        "accepts a lifetime exactly at the maximum",
        "accepts a lifetime over the maximum by no more than the leeway",
        "treats a null exp as absent",
    ],
)
def test_check_times_accepts(claims: dict[str, Any], kwargs: dict[str, Any]) -> None:
    check_times(claims, now=NOW, **kwargs)


@pytest.mark.parametrize(
    ("claims", "kwargs", "message"),
    [
        ({"exp": NOW}, {}, "expired"),
        ({"exp": NOW - 1}, {}, "expired"),
        ({"exp": NOW - 10}, {"leeway": 10}, "expired"),
        ({"exp": NOW + 60, "nbf": NOW + 1}, {}, "not yet valid"),
        ({"exp": NOW + 60, "nbf": NOW + 6}, {"leeway": 5}, "not yet valid"),
        ({"exp": NOW + 60, "iat": NOW + 1}, {}, "future"),
        ({"exp": NOW + 60, "iat": NOW + 6}, {"leeway": 5}, "future"),
        ({}, {}, "missing 'exp'"),
        ({"exp": None}, {}, "missing 'exp'"),
        ({"exp": NOW + 60}, {"require_iat": True}, "missing 'iat'"),
        ({"exp": NOW + 61}, {"max_lifetime": 60}, "lifetime"),
        ({"exp": NOW + 66}, {"max_lifetime": 60, "leeway": 5}, "lifetime"),
    ],
    ids=[
        "rejects exp equal to now",
        "rejects exp in the past",
        "rejects exp past by exactly the leeway",
        "rejects nbf in the future",
        "rejects nbf beyond the leeway",
        "rejects iat in the future",
        "rejects iat beyond the leeway",
        "rejects a missing exp",
        "rejects a null exp when exp is required",
        "rejects a missing iat when iat is required",
        "rejects a lifetime over the maximum",
        "rejects a lifetime over the maximum plus leeway",
    ],
)
def test_check_times_rejects(claims: dict[str, Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidClaimsError, match=message):
        check_times(claims, now=NOW, **kwargs)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"], ids=lambda n: f"for {n}")
@pytest.mark.parametrize(
    "value",
    [True, False, str(NOW + 60), [NOW + 60], {"t": NOW + 60}],
    ids=[
        "rejects true as a number",
        "rejects false as a number",
        "rejects a numeric string",
        "rejects an array",
        "rejects an object",
    ],
)
def test_check_times_rejects_values_that_are_not_numbers(name: str, value: object) -> None:
    claims: dict[str, Any] = {"exp": NOW + 60, name: value}
    with pytest.raises(InvalidClaimsError, match="must be a number"):
        check_times(claims, now=NOW, require_iat=True)


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"], ids=lambda n: f"rejects {n} NaN")
def test_check_times_rejects_nan(name: str) -> None:
    claims: dict[str, Any] = {"exp": NOW + 60, name: math.nan}
    with pytest.raises(InvalidClaimsError):
        check_times(claims, now=NOW, max_lifetime=120)


def test_check_times_rejects_an_infinite_exp() -> None:
    with pytest.raises(InvalidClaimsError):
        check_times({"exp": math.inf}, now=NOW)


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["too large", "too small"])
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_check_times_rejects_an_int_no_float_holds(name: str, value: int) -> None:
    """Legal JSON, but arithmetic with the float clock would raise OverflowError."""
    claims: dict[str, Any] = {"exp": NOW + 60, name: value}
    with pytest.raises(InvalidClaimsError, match="finite"):
        check_times(claims, now=float(NOW), require_iat=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW, float(NOW)),
        (2**53 + 1, float(2**53 + 1)),
        (0.5, 0.5),
        (10**400, None),
        (math.nan, None),
        (-math.inf, None),
        (True, None),
        ("1", None),
        (None, None),
    ],
)
def test_finite_number(value: object, expected: float | None) -> None:
    assert finite_number(value) == expected


@pytest.mark.parametrize(
    "constant",
    ["NaN", "Infinity", "-Infinity"],
    ids=[
        "rejects NaN in a payload",
        "rejects Infinity in a payload",
        "rejects -Infinity in a payload",
    ],
)
def test_parse_rejects_non_json_number_constants(constant: str, es256_key: SigningKey) -> None:
    payload = b64url_encode(f'{{"sub":"a","exp":{constant}}}'.encode())
    token = _forge(_header(es256_key), payload, es256_key)
    with pytest.raises(MalformedError):
        _parse(token)


def test_parse_rejects_a_utf16_header(es256_key: SigningKey) -> None:
    header = b64url_encode(json.dumps(_header(es256_key)).encode("utf-16"))
    with pytest.raises(MalformedError):
        _parse(_forge(header, CLAIMS, es256_key))


# --- check_audience ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "accepted"),
    [
        ("https://rs.example", ["https://rs.example"]),
        (["https://rs.example"], ["https://rs.example"]),
        (["https://other.example", "https://rs.example"], ["https://rs.example"]),
        ("https://rs.example", ["https://alias.example", "https://rs.example"]),
        ("https://rs.example", frozenset({"https://rs.example"})),
    ],
    ids=[
        "accepts a single string audience",
        "accepts a one-element list",
        "accepts a list in which one audience matches",
        "accepts any one of several accepted audiences",
        "accepts any collection of accepted audiences",
    ],
)
def test_check_audience_accepts(aud: str | list[str], accepted: Collection[str]) -> None:
    check_audience({"aud": aud}, accepted)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({}, "missing"),
        ({"aud": None}, "missing"),
        ({"aud": []}, "missing"),
        ({"aud": ""}, "not intended"),
        ({"aud": "https://other.example"}, "not intended"),
        ({"aud": ["https://other.example", "https://third.example"]}, "not intended"),
        ({"aud": "HTTPS://RS.EXAMPLE"}, "not intended"),
        ({"aud": "https://rs.example/"}, "not intended"),
        ({"aud": ["https://rs.example", 7]}, "malformed"),
        ({"aud": 7}, "malformed"),
        ({"aud": {"https://rs.example": True}}, "malformed"),
        ({"aud": [["https://rs.example"]]}, "malformed"),
    ],
    ids=[
        "rejects a missing aud",
        "rejects a null aud",
        "rejects an empty list",
        "rejects an empty string",
        "rejects another audience",
        "rejects a list of other audiences",
        "compares audiences case-sensitively",
        "does not normalise a trailing slash",
        "rejects a list with a non-string member",
        "rejects a number",
        "rejects an object",
        "rejects a nested list",
    ],
)
def test_check_audience_rejects(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidClaimsError, match=message):
        check_audience(claims, ["https://rs.example"])


def test_check_audience_treats_a_bare_string_as_one_audience() -> None:
    with pytest.raises(InvalidClaimsError):
        check_audience({"aud": "h"}, "https://rs.example")


# --- string_claim -----------------------------------------------------------------------------


def test_string_claim_returns_the_value() -> None:
    assert string_claim({"sub": "agent-1"}, "sub") == "agent-1"


@pytest.mark.parametrize(
    "claims",
    [{}, {"sub": ""}, {"sub": 7}, {"sub": ["agent-1"]}, {"sub": "x" * 513}],
    ids=[
        "rejects a missing claim",
        "rejects an empty string",
        "rejects a number",
        "rejects an array",
        "rejects a string over the limit",
    ],
)
def test_string_claim_rejects(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidClaimsError):
        string_claim(claims, "sub")


# --- text no database or encoder can hold --------------------------------------------------------


def _unsigned_token(payload_json: str) -> str:
    header = b64url_encode(b'{"alg":"ES256","typ":"JWT"}')
    return f"{header}.{b64url_encode(payload_json.encode())}.{b64url_encode(b'sig')}"


@pytest.mark.parametrize(
    "payload",
    [
        '{"sub":"a\\u0000b"}',
        '{"sub":"a\\ud800"}',
        '{"sub":"a\\uDC00"}',
        '{"act":{"sub":["x",{"k":"\\u0000"}]}}',
        '{"\\ud800":1}',
    ],
    ids=["NUL", "lone high surrogate", "lone low surrogate", "deep inside", "in a name"],
)
def test_parse_refuses_nul_and_lone_surrogates(payload: str) -> None:
    """I-JSON (RFC 7493 §2.1): a lone surrogate is no text at all; NUL has no use in a claim
    and PostgreSQL cannot store it.  Either is a malformed token, never a crash downstream."""
    with pytest.raises(MalformedError, match="NUL character or a lone surrogate"):
        parse(_unsigned_token(payload), algorithms=["ES256"], typ="JWT")


@pytest.mark.parametrize(
    ("payload", "sub"),
    [('{"sub":"\\ud83d\\ude00"}', "\U0001f600"), ('{"sub":"\\\\u0000"}', "\\u0000")],
    ids=["a surrogate pair", "an escaped backslash before u0000"],
)
def test_parse_accepts_escapes_that_are_text(payload: str, sub: str) -> None:
    assert parse(_unsigned_token(payload), algorithms=["ES256"], typ="JWT").claims["sub"] == sub
