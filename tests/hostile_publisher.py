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
                if behaviour.mode == "endless":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"[" * 16384
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.send_header("Content-Length", str(len(behaviour.body)))
                self.end_headers()
                if behaviour.mode == "drip":
                    for i in range(len(behaviour.body)):
                        self.wfile.write(behaviour.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(behaviour.interval)  # the misbehaviour itself
                else:
                    self.wfile.write(behaviour.body)
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
