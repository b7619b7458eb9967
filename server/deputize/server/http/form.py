"""Reading ``application/x-www-form-urlencoded`` request bodies as hostile input.

RFC 6749 §3.2 fixes the media type; §3.1 says parameters sent without a value count as
omitted and no parameter may appear twice.  Bodies are read in chunks up to a hard cap, so a
huge or endless upload costs us at most ``http.max_body_bytes``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache
from urllib.parse import unquote

from starlette.requests import ClientDisconnect, Request

from deputize.server.errors import InvalidRequestError, PayloadTooLargeError

_MAX_FIELDS = 64


class Form:
    """Parsed form parameters; single-valued unless the endpoint declared otherwise."""

    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self._values = values

    def get(self, name: str) -> str | None:
        values = self._values.get(name)
        return values[0] if values else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise InvalidRequestError(f"missing required parameter {name!r}")
        return value

    def get_all(self, name: str) -> list[str]:
        return list(self._values.get(name, ()))

    def __contains__(self, name: object) -> bool:
        return name in self._values


def _pairs(text: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, errors="strict", max_num_fields=_MAX_FIELDS)``, minus its
    per-field overhead: fields without a value are left out (§3.1), ``+`` is a space, and
    only fields with a ``%`` are percent-decoded (strictly: invalid UTF-8 is a ValueError)."""
    if text.count("&") >= _MAX_FIELDS:
        raise ValueError("too many fields")
    pairs = []
    for field in text.split("&"):
        name, _, value = field.partition("=")
        if value:
            pairs.append((_decode(name), _decode(value)))
    return pairs


#: Short percent-encoded values recur in every request (the grant and token type URNs);
#: ``unquote`` costs microseconds apiece, so they are decoded once.  Bounded, like the input.
_SHORT = 128


@lru_cache(maxsize=256)
def _unquote_short(text: str) -> str:
    return unquote(text, errors="strict")


def _decode(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    return _unquote_short(text) if len(text) <= _SHORT else unquote(text, errors="strict")


async def read_body(request: Request, *, max_bytes: int) -> bytearray:
    """The request body, refused (413) past ``max_bytes`` whether declared or streamed."""
    declared = request.headers.get("content-length")
    # Another ASGI server may pass on a Content-Length httptools would refuse: "²" is a digit to
    # ``isdigit`` but not to ``int``, and ``int`` refuses more than 4,300 digits.
    if declared is not None and not (
        declared.isascii() and declared.isdigit() and len(declared) <= 19
        and int(declared) <= max_bytes
    ):  # fmt: skip
        raise PayloadTooLargeError(f"request body larger than {max_bytes} bytes")
    body = bytearray()
    # The ASGI messages directly: ``request.stream()`` is an async generator around the same
    # loop, and the token endpoint is a hot path.
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # http.disconnect: nobody is left to answer
            raise ClientDisconnect()
        body += message.get("body", b"")
        if len(body) > max_bytes:
            raise PayloadTooLargeError(f"request body larger than {max_bytes} bytes")
        if not message.get("more_body", False):
            return body


async def read_form(request: Request, *, max_bytes: int, repeatable: Collection[str] = ()) -> Form:
    content_type = request.headers.get("content-type", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidRequestError("content type must be application/x-www-form-urlencoded")
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise InvalidRequestError("the request body must be UTF-8")
    body = await read_body(request, max_bytes=max_bytes)
    try:
        pairs = _pairs(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("the request body is not a valid UTF-8 form") from None
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise InvalidRequestError("parameters must not contain NUL characters")
        if name in values and name not in repeatable:
            raise InvalidRequestError(f"parameter {name!r} is repeated")
        values.setdefault(name, []).append(value)
    return Form(values)
