"""Reading ``application/json`` request bodies (RFC 7591 §3.1) as hostile input.

Read in chunks up to ``http.max_body_bytes`` like forms (``form.py``); malformed JSON, a key
given twice, ``NaN`` and nesting too deep are refused as the client's error, never a 500.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from starlette.requests import Request

from deputize.server.errors import OAuthError
from deputize.server.http.form import read_body


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"member {name!r} is repeated")
        result[name] = value
    return result


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, *, max_bytes: int, error: type[OAuthError]) -> object:
    """The parsed body; ``error`` (the endpoint's own code) for anything that is not JSON."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise error("content type must be application/json")
    body = await read_body(request, max_bytes=max_bytes)
    try:
        return json.loads(
            body.decode("utf-8"), object_pairs_hook=_no_repeats, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise error("the request body is not valid JSON") from None
