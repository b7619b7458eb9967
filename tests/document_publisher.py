"""A client metadata document publisher on loopback: one behaviour per path, and a count of
the requests each path received (so cache tests count fetches instead of sleeping)."""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hostile_publisher import send_body


@dataclass
class Page:
    body: bytes = b"{}"
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    #: ``body``: at once; ``drip``: a byte per ``interval``; ``endless``: a chunked body that
    #: never ends; ``silent``: no Content-Length, the body then the connection closed.
    mode: str = "body"
    interval: float = 0.2


@dataclass
class Publisher:
    base: str
    pages: dict[str, Page] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    hosts: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


@contextmanager
def document_publisher(tls: ssl.SSLContext | None = None) -> Iterator[Publisher]:
    """Serve on 127.0.0.1; with ``tls``, over https, its base URL naming ``localhost``."""
    publisher = Publisher(base="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                publisher.hits[self.path] += 1
                publisher.hosts.append(self.headers.get("Host", ""))
            page = publisher.pages.get(self.path, Page(status=404, body=b""))
            try:
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                send_body(self, page.body, page.mode, page.interval, b" ")
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up, as it should

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    publisher.base = f"http://127.0.0.1:{port}"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        publisher.base = f"https://localhost:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield publisher
    finally:
        server.shutdown()
        server.server_close()
