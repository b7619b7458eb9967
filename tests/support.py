"""Test support: live servers in a background thread, standard clients and request helpers.

The server is the real application under uvicorn on a socket bound to 127.0.0.1 before the
thread starts, so requests made straight away wait in the listen backlog until the server is
up — no sleeping, no polling.
"""

from __future__ import annotations

import base64
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import uvicorn
import yaml

from deputize.keys import SigningKey, create_proof, sign
from deputize.server.app import create_app
from deputize.server.settings import Settings, parse_settings

POSTGRES_ENV = "DEPUTIZE_TEST_POSTGRES_URL"
API = "https://api.example.com"
OTHER_API = "https://other.example.com"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: Secrets of the standard secret-authenticated clients (each ≥ 32 characters).
SECRETS = {
    "svc-basic": "basic-secret-0123456789abcdefghijklmnop",
    "svc-post": "post-secret-0123456789abcdefghijklmnopqr",
    "resource-server": "rs-secret-0123456789abcdefghijklmnopqrst",
    "svc-bearer": "bearer-secret-0123456789abcdefghijklmnop",
}
#: The private key of the standard private_key_jwt client ``agent-jwt``.
AGENT_KEY = SigningKey.generate("ES256")


def standard_clients() -> list[dict[str, Any]]:
    """Config entries (as YAML would give them) for the clients most tests use."""
    from deputize.server.clients.secrets import hash_secret

    return [
        {
            "client_id": "svc-basic",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(SECRETS["svc-basic"]),
            "scopes": ["read", "write"],
            "audiences": [API, OTHER_API],
        },
        {
            "client_id": "svc-post",
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret_hash": hash_secret(SECRETS["svc-post"]),
            "scopes": ["read"],
            "audiences": [API],
        },
        {
            "client_id": "svc-bearer",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(SECRETS["svc-bearer"]),
            "scopes": ["read"],
            "audiences": [API],
            "dpop_bound_access_tokens": False,
        },
        {
            "client_id": "agent-jwt",
            "agent": True,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [AGENT_KEY.public_jwk()]},
            "scopes": ["read", "write"],
            "audiences": [API],
        },
        {
            "client_id": "resource-server",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(SECRETS["resource-server"]),
            "grant_types": [],
            "can_introspect": True,
        },
    ]


def write_config(path: Path, database_url: str, **extra: Any) -> Path:
    """A config file at ``path`` with the standard clients, for tests of the command line."""
    config: dict[str, Any] = {
        "issuer": "http://127.0.0.1:8000",
        "database": {"url": database_url},
        "clients": standard_clients(),
        **extra,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    """An RFC 6749 §5.2 error: the status, the code, no-store, and nothing else in the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert isinstance(body, dict)
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description"}
    assert "Traceback" not in response.text and 'File "' not in response.text
    if status == 401:
        # RFC 6749 §5.2 / RFC 9110 §15.5.2: a 401 carries a challenge.
        assert response.headers["www-authenticate"].startswith("Basic ")
    return body


class Clock:
    """A settable clock for the server; defaults to real time plus an offset."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class LiveServer:
    settings: Settings
    clock: Clock
    server: uvicorn.Server
    thread: threading.Thread
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return self.settings.issuer

    @property
    def token_endpoint(self) -> str:
        return self.settings.token_endpoint

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)

    # --- request helpers ----------------------------------------------------------------------

    def basic(self, client_id: str, secret: str | None = None) -> dict[str, str]:
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
        secret = secret if secret is not None else SECRETS[client_id]
        raw = f"{quote_plus(client_id)}:{quote_plus(secret)}"
        return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}

    def assertion(
        self,
        client_id: str = "agent-jwt",
        key: SigningKey = AGENT_KEY,
        *,
        aud: str | list[str] | None = None,
        lifetime: int = 60,
        jti: str | None = None,
        **extra: Any,
    ) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": client_id,
            "sub": client_id,
            "aud": aud if aud is not None else self.url,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti or secrets.token_urlsafe(12),
            **extra,
        }
        return sign(claims, key, typ="JWT")

    def nonce(self) -> str:
        """A current server nonce (from an unauthenticated, refused token request)."""
        response = self.client.post("/token", data={"grant_type": "client_credentials"})
        return response.headers["DPoP-Nonce"]

    def proof(
        self,
        key: SigningKey,
        *,
        method: str = "POST",
        url: str | None = None,
        nonce: str | None = "auto",
        access_token: str | None = None,
        now: float | None = None,
    ) -> str:
        return create_proof(
            key,
            method,
            url or self.token_endpoint,
            nonce=self.nonce() if nonce == "auto" else nonce,
            access_token=access_token,
            now=self.clock() if now is None else now,
        )

    def token(
        self,
        data: Mapping[str, str] | None = None,
        *,
        client_id: str = "svc-basic",
        dpop_key: SigningKey | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A client_credentials request from a standard client; with a DPoP proof if given a key."""
        form = {"grant_type": "client_credentials", **(data or {})}
        all_headers = dict(headers or {})
        if client_id == "agent-jwt":
            form.update(client_assertion_type=JWT_BEARER, client_assertion=self.assertion())
        elif client_id == "svc-post":
            form.update(client_id=client_id, client_secret=SECRETS[client_id])
        else:
            all_headers.update(self.basic(client_id))
        if dpop_key is not None:
            all_headers["DPoP"] = self.proof(dpop_key)
        return self.client.post("/token", data=form, headers=all_headers)


class ServerFactory:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.servers: list[LiveServer] = []

    def settings(self, port: int, overrides: Mapping[str, Any] | None = None) -> Settings:
        config: dict[str, Any] = {
            "issuer": f"http://127.0.0.1:{port}",
            "database": {"url": self.database_url},
            "clients": standard_clients(),
        }
        for key, value in (overrides or {}).items():
            if isinstance(value, Mapping) and isinstance(config.get(key), Mapping):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return parse_settings(config, env={})

    def start(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
        configure: Callable[[Settings], Settings] | None = None,
    ) -> LiveServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        settings = self.settings(port, overrides)
        if configure is not None:
            settings = configure(settings)
        clock = clock or Clock()
        app = create_app(settings, clock=clock)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        live = LiveServer(settings=settings, clock=clock, server=server, thread=thread)
        self.servers.append(live)
        # Blocks until the application has started (the request waits in the backlog).
        live.client.get("/jwks").raise_for_status()
        return live

    def stop_all(self) -> None:
        for live in self.servers:
            live.stop()


class LogWatch(logging.Handler):
    """The log records of the in-process server (logger ``deputize.server``)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self._added = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._added:
            self.records.append(record)
            self._added.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> bool:
        """Whether a record containing ``text`` arrives within ``timeout`` seconds."""
        with self._added:
            return self._added.wait_for(
                lambda: any(text in record.getMessage() for record in self.records), timeout
            )


@contextmanager
def watch_server_log(level: int) -> Iterator[LogWatch]:
    """Collect the server's records at ``level`` and up while the block runs."""
    watch = LogWatch(level)
    log = logging.getLogger("deputize.server")
    previous = log.level
    log.addHandler(watch)
    if log.getEffectiveLevel() > level:
        log.setLevel(level)
    try:
        yield watch
    finally:
        log.removeHandler(watch)
        log.setLevel(previous)
