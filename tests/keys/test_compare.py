"""Constant-time text comparison (``deputize.keys.compare``)."""

from __future__ import annotations

import pytest

from deputize.keys.compare import same_text


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "abcd", False),
        ("é", "é", True),
        ("é", "e", False),
        ("\ud800", "\ud800", True),
        ("\ud800", "x", False),
        ("", "", True),
    ],
)
def test_same_text_compares_any_strings(a: str, b: str, equal: bool) -> None:
    """``hmac.compare_digest`` raises for non-ASCII ``str``; this never does."""
    assert same_text(a, b) is equal
