"""Tokens and proofs for verifier tests, made with real keys the way Deputize makes them."""

from __future__ import annotations

import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from deputize.keys import SigningKey, create_proof, sign
from deputize.keys._b64 import b64url_encode
from deputize.verifier import Verifier

ISSUER = "https://auth.example.com"
RESOURCE = "https://docs.example.com"
URL = RESOURCE + "/documents/1"
AS_KEY = SigningKey.generate("ES256")
AGENT_KEY = SigningKey.generate("ES256")
STATUS_URI = ISSUER + "/statuslists/0"


class Clock:
    """A clock the test sets; starts at the real time."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def token_claims(clock: Clock, **overrides: Any) -> dict[str, Any]:
    """alice -> scheduling-agent -> analysis-agent, bound to AGENT_KEY, reading docs."""
    now = int(clock())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": RESOURCE,
        "client_id": "analysis-agent",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(12),
        "scope": "docs:read",
        "act": {"sub": "analysis-agent", "act": {"sub": "scheduling-agent"}},
        "cnf": {"jkt": AGENT_KEY.kid},
        "task": "quarterly-report",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def make_token(
    clock: Clock,
    *,
    key: SigningKey = AS_KEY,
    typ: str = "at+jwt",
    headers: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> str:
    return sign(token_claims(clock, **overrides), key, typ=typ, headers=headers)


def make_proof(
    clock: Clock,
    token: str | None,
    *,
    key: SigningKey = AGENT_KEY,
    method: str = "GET",
    url: str = URL,
    nonce: str | None = None,
    iat_offset: float = 0,
) -> str:
    return create_proof(key, method, url, access_token=token, nonce=nonce, now=clock() + iat_offset)


def pinned(clock: Clock, *, keys: tuple[SigningKey, ...] = (AS_KEY,), **options: Any) -> Verifier:
    return Verifier(
        ISSUER, RESOURCE, jwks={"keys": [k.public_jwk() for k in keys]}, clock=clock, **options
    )


def status_list_token(
    clock: Clock, revoked: set[int], *, size: int = 1024, ttl: object = 60,
    key: SigningKey = AS_KEY, uri: str = STATUS_URI, **overrides: Any,
) -> str:  # fmt: skip
    data = bytearray(size // 8)
    for idx in revoked:
        data[idx // 8] |= 1 << (idx % 8)
    now = int(clock())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": uri,
        "iat": now,
        "exp": now + 600,
        "ttl": ttl,
        "status_list": {"bits": 1, "lst": b64url_encode(zlib.compress(bytes(data)))},
        **overrides,
    }
    return sign(claims, key, typ="statuslist+jwt")


class ServedApp:
    """An ASGI app under uvicorn on a loopback port, in a thread (like ``support.LiveServer``)."""

    def __init__(self, make_app: Callable[[str], Any]) -> None:
        """``make_app`` gets the URL the app is served at (its public base URL)."""
        import socket
        import threading

        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(make_app(self.url), log_level="warning", lifespan="on", access_log=False)
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
