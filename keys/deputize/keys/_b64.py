"""Strict base64url without padding (RFC 7515 §2), the only encoding JOSE uses."""

from __future__ import annotations

import base64
import binascii
from typing import Final

from deputize.keys.errors import MalformedError

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE: Final = {char: value for value, char in enumerate(_ALPHABET)}
#: Bits of the last character that carry no data, by length mod 4 (RFC 4648 §3.5).
_UNUSED_BITS: Final = {2: 0x0F, 3: 0x03}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, rejecting padding, other alphabets and non-canonical tails.

    On every token's hot path, so the alphabet is checked by ``binascii`` in strict mode rather
    than by a regular expression, and canonicity by the last character's unused bits rather
    than by re-encoding.
    """
    remainder = len(text) % 4
    if remainder == 1 or "=" in text or "+" in text or "/" in text:
        raise MalformedError("invalid base64url")
    try:
        raw = binascii.a2b_base64(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), strict_mode=True
        )
    except (binascii.Error, ValueError):  # other characters, non-ASCII
        raise MalformedError("invalid base64url") from None
    # Reject encodings whose unused trailing bits are non-zero: two strings must not decode to
    # the same bytes, or a signature could be "reused" over a different-looking token.
    if remainder and _VALUE[text[-1]] & _UNUSED_BITS[remainder]:
        raise MalformedError("non-canonical base64url")
    return raw
