"""Constant-time equality for text that may have come from the network."""

from __future__ import annotations

import hmac


def same_text(presented: str, expected: str) -> bool:
    """``hmac.compare_digest`` for any two strings, compared as UTF-8.

    ``compare_digest`` raises ``TypeError`` for a ``str`` with a non-ASCII character, so a
    hostile value (an ``ath`` of "é", a non-ASCII ``redirect_uri``) would become an exception
    and a 500 instead of a plain mismatch.  ``surrogatepass``: JSON may carry a lone surrogate.
    """
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
