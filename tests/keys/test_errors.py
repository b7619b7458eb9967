"""deputize.keys.errors: one hierarchy with stable ``error`` codes."""

from __future__ import annotations

import pytest

from deputize.keys import (
    InvalidClaimsError,
    InvalidKeyError,
    InvalidProofError,
    InvalidSignatureError,
    JoseError,
    MalformedError,
    UnsupportedAlgorithmError,
)
from deputize.keys.errors import error_description, shown


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (JoseError, "invalid_request"),
        (MalformedError, "invalid_request"),
        (UnsupportedAlgorithmError, "invalid_request"),
        (InvalidKeyError, "invalid_request"),
        (InvalidSignatureError, "invalid_request"),
        (InvalidClaimsError, "invalid_request"),
        (InvalidProofError, "invalid_dpop_proof"),
    ],
    ids=[
        "the base error is invalid_request",
        "a malformed input is invalid_request",
        "an unsupported alg is invalid_request",
        "an invalid key is invalid_request",
        "a bad signature is invalid_request",
        "bad claims are invalid_request",
        "a bad DPoP proof is invalid_dpop_proof (RFC 9449 §7.1)",
    ],
)
def test_error_codes(cls: type[JoseError], code: str) -> None:
    error = cls("what went wrong")
    assert isinstance(error, JoseError)
    assert error.error == code
    assert error.description == "what went wrong"
    assert str(error) == "what went wrong"


def test_errors_are_not_key_errors() -> None:
    # A JoseError must never be swallowed by an `except KeyError` meant for a dict lookup.
    assert not issubclass(JoseError, LookupError)


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("alg 'ES256' is not allowed", "alg 'ES256' is not allowed"),
        ("alg 'a\"b' is not allowed", "alg 'a?b' is not allowed"),
        ("typ 'x\\\\y'", "typ 'x??y'"),
        ("alg '€' and 'é'", "alg '?' and '?'"),
        ("line\r\nSet-Cookie: x=1", "line??Set-Cookie: x=1"),
        ("tab\there\x00\x7f", "tab?here??"),
        (
            "all of !#$%&()*+,-./:;<=>?@[]^_`{|}~ stays",
            "all of !#$%&()*+,-./:;<=>?@[]^_`{|}~ stays",
        ),
    ],
    ids=["plain", "a quote", "backslashes", "non-ASCII", "CRLF", "controls", "punctuation"],
)
def test_error_description_keeps_only_what_rfc_6749_allows(text: str, sent: str) -> None:
    """RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E.  A quote would end a WWW-Authenticate
    quoted-string, and a non-Latin-1 character cannot be sent in a header at all."""
    assert error_description(text) == sent
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in error_description(text))


def test_shown_cuts_long_text_with_ascii() -> None:
    """What ``shown`` cuts must survive ``error_description`` as it is."""
    cut = shown("x" * 100)
    assert cut == repr("x" * 40) + "..."
    assert error_description(cut) == cut
