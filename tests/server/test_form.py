"""The token endpoint's form parser gives exactly what ``urllib.parse.parse_qsl`` gives."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import parse_qsl

import pytest
from starlette.requests import Request

from deputize.server.errors import PayloadTooLargeError
from deputize.server.http.form import _MAX_FIELDS, _pairs, read_form

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


@pytest.mark.parametrize(
    "declared", ["\u00b2", "1\u00b3", "9" * 5000, "-1", " 10"],
    ids=["a superscript digit", "ending in one", "5,000 digits", "negative", "a space"],
)  # fmt: skip
def test_a_content_length_httptools_would_refuse_is_refused_here_too(declared: str) -> None:
    """uvicorn's parser refuses these before the app sees them, so no test over HTTP reaches
    this check; another ASGI server may pass them on.  "²" is a digit to ``isdigit`` but not
    to ``int``, and ``int`` refuses 5,000 digits: both were a ValueError, a 500."""

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"grant_type=x", "more_body": False}

    scope = {
        "type": "http", "method": "POST", "path": "/token",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", declared.encode("latin-1"))],
    }  # fmt: skip
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(read_form(Request(scope, receive), max_bytes=16384, repeatable=()))
