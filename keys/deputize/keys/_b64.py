"""Strict base64url without padding (RFC 7515 §2), the only encoding JOSE uses."""

from __future__ import annotations

import base64
import binascii
import re

from deputize.keys.errors import MalformedError

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, rejecting padding, other alphabets and non-canonical tails."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedError("invalid base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex screens these
        raise MalformedError("invalid base64url") from exc
    # Reject encodings whose unused trailing bits are non-zero: two strings must not decode to
    # the same bytes, or a signature could be "reused" over a different-looking token.
    if b64url_encode(raw) != text:
        raise MalformedError("non-canonical base64url")
    return raw
