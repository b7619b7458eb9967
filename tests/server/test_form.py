"""The token endpoint's form parser gives exactly what ``urllib.parse.parse_qsl`` gives."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from deputize.server.form import _MAX_FIELDS, _pairs

# Separators, escapes (valid, truncated, invalid UTF-8), spaces, NUL and non-ASCII.
_PIECES = ["a", "b", "=", "&", ";", "+", "%", "%2", "%41", "%2B", "%26", "%3D", "%C3%A9", "%ff",
           "%00", "é", " ", "x_y", "%%", "=="]  # fmt: skip


def _reference(text: str) -> list[tuple[str, str]] | str:
    try:
        return parse_qsl(text, errors="strict", max_num_fields=_MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc).__name__


def _ours(text: str) -> list[tuple[str, str]] | str:
    try:
        return _pairs(text)
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc).__name__


def test_random_forms_parse_as_parse_qsl_parses_them() -> None:
    rng = random.Random(20261122)  # noqa: S311 - reproducible test inputs
    for _ in range(20_000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randrange(12)))
        assert _ours(text) == _reference(text), text


@pytest.mark.parametrize("fields", [_MAX_FIELDS - 1, _MAX_FIELDS, _MAX_FIELDS + 1])
def test_the_field_limit_is_parse_qsl_s(fields: int) -> None:
    text = "&".join(f"f{n}=v" for n in range(fields))
    assert _ours(text) == _reference(text)
