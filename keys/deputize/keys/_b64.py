"""Strict base64url without padding (RFC 7515 §2), the only encoding JOSE uses."""

from __future__ import annotations

import base64
import binascii
import re

from deputize.keys.errors import MalformedError

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# The last character of a canonical encoding leaves its unused low bits zero: 4 bits when
# the last group has 2 characters, 2 bits when it has 3.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CANONICAL_LAST = {
    2: frozenset(_ALPHABET[i] for i in range(0, 64, 16)),
    3: frozenset(_ALPHABET[i] for i in range(0, 64, 4)),
}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, rejecting padding, other alphabets and non-canonical tails."""
    tail = len(text) % 4
    if tail == 1 or not _B64URL.fullmatch(text):
        raise MalformedError("invalid base64url")
    # Reject encodings whose unused trailing bits are non-zero: two strings must not decode to
    # the same bytes, or a signature could be "reused" over a different-looking token.
    if tail and text[-1] not in _CANONICAL_LAST[tail]:
        raise MalformedError("non-canonical base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-tail % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex screens these
        raise MalformedError("invalid base64url") from exc
