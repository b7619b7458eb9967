"""A key or document server on loopback that misbehaves on purpose, for the tests of every
outbound fetch (the server's client JWKS, the verifier's metadata, JWKS and status lists).

``drip``: a valid document, one byte per ``interval`` seconds: each read arrives well within a
read timeout, so only a deadline on the whole fetch ends it.  ``endless``: a chunked body that
never ends.  ``body``: ``body`` at once.  The handler stops when the client hangs up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    mode: str = "body"
    body: bytes = b"{}"
    interval: float = 0.2


@contextmanager
def hostile_publisher(behaviour: Behaviour) -> Iterator[str]:
    """Serve ``behaviour`` on loopback; yields the document's URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                send_body(self, behaviour.body, behaviour.mode, behaviour.interval, b"[")
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up, as it should

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/document"
    finally:
        server.shutdown()
        server.server_close()


def send_body(
    handler: BaseHTTPRequestHandler, body: bytes, mode: str, interval: float, filler: bytes
) -> None:
    """The rest of a response whose status and headers the caller sent: ``body`` at once, a byte
    every ``interval`` seconds (``drip``), or an endless chunked stream of ``filler``
    (``endless``), which only the client hanging up ends (``BrokenPipeError``)."""
    if mode == "endless":
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = filler * 16384
        while True:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if mode == "drip":
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(interval)  # the misbehaviour itself
    else:
        handler.wfile.write(body)
