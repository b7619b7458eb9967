"""Reading ``application/json`` request bodies (RFC 7591 §3.1) as hostile input.

Read in chunks up to ``http.max_body_bytes`` like forms (``form.py``); malformed JSON, a key
given twice, ``NaN`` and nesting too deep are refused as the client's error, never a 500.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from starlette.requests import ClientDisconnect, Request

from deputize.server.errors import OAuthError, PayloadTooLargeError


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
    declared = request.headers.get("content-length")
    if declared is not None and not (
        declared.isascii() and declared.isdigit() and len(declared) <= 19
        and int(declared) <= max_bytes
    ):  # fmt: skip
        raise PayloadTooLargeError(f"request body larger than {max_bytes} bytes")
    body = bytearray()
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > max_bytes:
            raise PayloadTooLargeError(f"request body larger than {max_bytes} bytes")
        if not message.get("more_body", False):
            break
    try:
        return json.loads(
            body.decode("utf-8"), object_pairs_hook=_no_repeats, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise error("the request body is not valid JSON") from None
