"""Strict base64url without padding (RFC 7515 §2), the only encoding JOSE uses."""

from __future__ import annotations

import binascii
from typing import Final

from deputize.keys.errors import MalformedError

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE: Final = {char: value for value, char in enumerate(_ALPHABET)}
#: Bits of the last character that carry no data, by length mod 4 (RFC 4648 §3.5).
_UNUSED_BITS: Final = {2: 0x0F, 3: 0x03}
_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
#: The padding strict decoding needs, by length mod 4 (1 is never valid).
_PADDING: Final = ("", "", "==", "=")


def b64url_encode(data: bytes) -> str:
    # binascii directly: base64.urlsafe_b64encode is two Python calls around the same steps.
    encoded = binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE)
    return encoded.rstrip(b"=").decode("ascii")


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
            text.replace("-", "+").replace("_", "/") + _PADDING[remainder], strict_mode=True
        )
    except (binascii.Error, ValueError):  # other characters, non-ASCII
        raise MalformedError("invalid base64url") from None
    # Reject encodings whose unused trailing bits are non-zero: two strings must not decode to
    # the same bytes, or a signature could be "reused" over a different-looking token.
    if remainder and _VALUE[text[-1]] & _UNUSED_BITS[remainder]:
        raise MalformedError("non-canonical base64url")
    return raw
