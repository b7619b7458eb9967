"""Fetching other parties' JWK Sets: size cap, failures, last-good fallback, rate-limited refetch.

A tiny threaded HTTP server on loopback plays the publisher; it counts requests, so no test
needs to wait for anything.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TypeVar

import httpx
import pytest
from hostile_publisher import Behaviour, hostile_publisher

from deputize.keys import SigningKey
from deputize.server.clients.remote_jwks import MAX_JWKS_BYTES, JWKSFetchError, RemoteJWKS

T = TypeVar("T")


class Publisher:
    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.hits = 0
        self.serve_keys([SigningKey.generate()])

    def serve_keys(self, keys: list[SigningKey]) -> None:
        self.body = json.dumps({"keys": [k.public_jwk() for k in keys]}).encode()


@pytest.fixture
def publisher() -> Iterator[tuple[Publisher, str]]:
    state = Publisher()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def _run(scenario: Callable[[RemoteJWKS], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(timeout=5) as http:
            return await scenario(RemoteJWKS(http, ttl=300, min_refetch=30))

    return asyncio.run(main())


def test_fetches_once_and_serves_from_cache(publisher: tuple[Publisher, str]) -> None:
    state, uri = publisher

    async def scenario(cache: RemoteJWKS) -> int:
        first = await cache.get(uri, now=1000)
        second = await cache.get(uri, now=1100)
        return len(first) + len(second)

    assert _run(scenario) == 2
    assert state.hits == 1


def test_refetch_on_request_is_rate_limited(publisher: tuple[Publisher, str]) -> None:
    state, uri = publisher
    rotated = SigningKey.generate()

    async def scenario(cache: RemoteJWKS) -> tuple[bool, bool]:
        await cache.get(uri, now=1000)
        state.serve_keys([rotated])
        too_soon = rotated.kid in await cache.get(uri, now=1010, refresh=True)
        later = rotated.kid in await cache.get(uri, now=1031, refresh=True)
        return too_soon, later

    assert _run(scenario) == (False, True)
    assert state.hits == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"{}"),
        (200, b"x" * (MAX_JWKS_BYTES + 1)),
        (200, b"not json"),
        (200, json.dumps({"keys": [{**SigningKey.generate().public_jwk(), "d": "AAAA"}]}).encode()),
        (200, b'{"keys":' + b"[" * 30_000 + b"]" * 30_000 + b"}"),
    ],
    ids=[
        "refuses an error status",
        "refuses a document over the size cap",
        "refuses a document that is not JSON",
        "refuses a set that leaks a private key",
        "refuses nesting too deep for the parser (was a RecursionError, a 500)",
    ],
)
def test_refuses_bad_documents(publisher: tuple[Publisher, str], status: int, body: bytes) -> None:
    state, uri = publisher
    state.status, state.body = status, body

    async def scenario(cache: RemoteJWKS) -> None:
        await cache.get(uri, now=1000)

    with pytest.raises(JWKSFetchError):
        _run(scenario)


def test_keeps_the_last_good_set_when_a_refetch_fails(publisher: tuple[Publisher, str]) -> None:
    state, uri = publisher

    async def scenario(cache: RemoteJWKS) -> int:
        await cache.get(uri, now=1000)
        state.status = 503
        return len(await cache.get(uri, now=2000))  # past the TTL: refetch fails

    assert _run(scenario) == 1
    assert state.hits == 2


def test_one_deadline_bounds_the_whole_fetch() -> None:
    """Each byte arrives well within httpx's read timeout, so only a deadline on the whole
    fetch ends it; without one, a client's key server held the token endpoint's requests for
    that client (they wait on the same fetch) for as long as it liked."""
    body = json.dumps({"keys": [SigningKey.generate().public_jwk()]}).encode()
    with hostile_publisher(Behaviour("drip", body, interval=0.05)) as uri:

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=5) as http:
                await RemoteJWKS(http, deadline=0.5).get(uri, now=1000)

        with pytest.raises(JWKSFetchError, match=r"longer than 0\.5 s"):
            asyncio.run(scenario())


def test_an_endless_document_stops_at_the_size_cap() -> None:
    with hostile_publisher(Behaviour("endless")) as uri:

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=5) as http:
                await RemoteJWKS(http).get(uri, now=1000)

        with pytest.raises(JWKSFetchError, match="too large"):
            asyncio.run(scenario())
