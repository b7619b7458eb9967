"""A bound on each request's head (request line and header fields) for ``deputize serve``.

uvicorn's httptools protocol buffers a request's head however large it grows: one 50 MB header
line, or 200,000 header fields, were read and answered.  ``http.max_body_bytes`` bounds what
follows the head; this bounds the head itself.  A head still incomplete after more than
``http.max_header_bytes`` bytes is answered 431 (RFC 6585 §5) and the connection closed, so
the memory one connection can hold is at most that bound plus one read from the socket.

This subclasses uvicorn's protocol at three documented-by-use points (``data_received``,
``on_headers_complete``, ``on_message_complete``), the same ones uvicorn's own flow control
uses; ``tests/server/test_http_head.py`` drives it through a real server, so an upgrade of
uvicorn that moves them fails there, not in production.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from deputize.keys._json import dumps

STATUS_LINE: Final = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"


class BoundedHeadProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that refuses a request head larger than ``max_head_bytes``."""

    max_head_bytes: int = 32 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes received since the current head began
        self._in_head = True  # between requests, whatever arrives starts the next head

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a read that completes the head may also carry the start of a
        # body, which is no part of the head.  A head still open past the bound is refused.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined head behind a response still being written: an answer now would
            # land inside that response.  Closing is all that is left.
            self.transport.close()
            return
        body = dumps(
            {
                "error": "invalid_request",
                "error_description": f"request headers larger than {self.max_head_bytes} bytes",
            }
        )
        head = [STATUS_LINE]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"cache-control: no-store\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


def protocol(max_head_bytes: int) -> type[asyncio.Protocol]:
    """The protocol class ``deputize serve`` gives uvicorn, with the configured bound."""
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), {"max_head_bytes": max_head_bytes})
