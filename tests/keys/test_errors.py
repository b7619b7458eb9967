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
