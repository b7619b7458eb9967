"""deputize.keys._b64: strict, unpadded, canonical base64url (RFC 7515 §2, RFC 4648 §5)."""

from __future__ import annotations

import base64

import pytest

from deputize.keys import MalformedError
from deputize.keys._b64 import b64url_decode, b64url_encode


@pytest.mark.parametrize(
    "data",
    [b"", b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", bytes(range(256)), b"\xfb\xff\xbf"],
    ids=[
        "round-trips empty input",
        "round-trips one byte",
        "round-trips two bytes",
        "round-trips three bytes",
        "round-trips four bytes",
        "round-trips five bytes",
        "round-trips six bytes",
        "round-trips every byte value",
        "round-trips bytes that need - and _",
    ],
)
def test_round_trip(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert "=" not in encoded
    assert encoded == base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert b64url_decode(encoded) == data


def test_encode_uses_the_url_safe_alphabet() -> None:
    assert b64url_encode(b"\xfb\xff\xbf") == "-_-_"


@pytest.mark.parametrize(
    "text",
    [
        "Zg==",
        "Zg=",
        "Zm9v=",
        "+/+/",
        "Zm 9v",
        "Zm9v\n",
        " Zm9v",
        "Zm9vY",
        "Z",
        "Zm9v\u00e9",
        "Zh",
        "Zm9=",
    ],
    ids=[
        "rejects two padding characters",
        "rejects one padding character",
        "rejects padding where none is needed",
        "rejects the standard alphabet",
        "rejects an inner space",
        "rejects a trailing newline",
        "rejects a leading space",
        "rejects a length of 4n+1",
        "rejects a single character",
        "rejects a non-ASCII character",
        "rejects non-zero unused bits after one byte",
        "rejects padding inside the last quantum",
    ],
)
def test_decode_rejects(text: str) -> None:
    with pytest.raises(MalformedError):
        b64url_decode(text)


@pytest.mark.parametrize(
    ("canonical", "twin"),
    [("Zg", "Zh"), ("Zg", "Zv"), ("Zm8", "Zm9")],
    ids=[
        "one byte has one canonical spelling (lowest unused bit set)",
        "one byte has one canonical spelling (all unused bits set)",
        "two bytes have one canonical spelling",
    ],
)
def test_decode_rejects_non_canonical_twins(canonical: str, twin: str) -> None:
    # A lenient decoder reads both the same; two spellings of one signature must not exist.
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(canonical + "==")
    assert b64url_decode(canonical) == base64.urlsafe_b64decode(canonical + "==")
    with pytest.raises(MalformedError, match="non-canonical"):
        b64url_decode(twin)
