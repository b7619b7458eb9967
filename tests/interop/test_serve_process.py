"""The real thing: ``deputize init``, ``clients add`` and ``serve`` as separate processes, spoken
to over HTTP the way a deployment would be, then stopped with SIGTERM and started again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from deputize.keys import KeySet, SigningKey, create_proof, parse

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).with_name("deputize")
API = "https://api.example.com"


def _free_port() -> int:
    """A port that was free a moment ago.

    The issuer must be in the config before the server starts, so ``--port 0`` will not do.
    Another process could take the port between this close and the server's bind; the server
    then fails to start and the test fails loudly rather than talking to a stranger.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _environment() -> dict[str, str]:
    """The test's environment without Deputize overrides, so only the config file speaks."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("DEPUTIZE_ISSUER", "DEPUTIZE_DATABASE_URL")
        and not name.startswith("DEPUTIZE_CLIENT_SECRET_")
    }


def _deputize(cwd: Path, *argv: str) -> str:
    result = subprocess.run(
        [str(SCRIPT), *argv],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextmanager
def _serve(
    cwd: Path, config: Path, port: int, log: IO[str], *options: str
) -> Iterator[subprocess.Popen[str]]:
    """``deputize serve``; yields once the process has announced its address."""
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--config", str(config), "--port", str(port), *options],
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert process.stdout is not None
        # Blocks until the server has started (schema, keys) and printed this line: it serves
        # from now on (test_serve_bad_database.py checks the order).
        line = process.stdout.readline()
        issuer = f"http://127.0.0.1:{port}"
        assert line == f"Deputize listening on {issuer} (issuer {issuer})\n"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def _added_secret(out: str) -> str:
    lines = out.strip().splitlines()
    assert lines[-2].startswith("Client secret (shown once")
    return lines[-1]


def _basic(client_id: str, secret: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(client_id, secret)


def _kids(jwks: Any) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


def test_serve_process_end_to_end(tmp_path: Path) -> None:
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    conf, run = tmp_path / "conf", tmp_path / "run"
    conf.mkdir()
    run.mkdir()
    config = conf / "deputize.yaml"

    out = _deputize(run, "init", "--output", str(config), "--issuer", issuer)
    assert f"Wrote {config}" in out
    assert "OK" in _deputize(run, "check-config", str(config))
    service_secret = _added_secret(
        _deputize(
            run,
            *("clients", "add", "--config", str(config), "--client-id", "e2e-service"),
            *("--scope", "read", "--audience", API),
        )
    )
    introspector_secret = _added_secret(
        _deputize(
            run,
            "clients",
            "add",
            "--config",
            str(config),
            "--client-id",
            "e2e-rs",
            "--can-introspect",
        )
    )
    # The relative sqlite:///deputize.db of the starter lives next to the config file.
    assert (conf / "deputize.db").is_file()

    holder = SigningKey.generate("ES256")
    with (
        (tmp_path / "serve.log").open("w", encoding="utf-8") as log,
        _serve(run, config, port, log) as process,
        httpx.Client(base_url=issuer, timeout=30) as client,
    ):
        discovery = client.get("/.well-known/oauth-authorization-server")
        assert discovery.status_code == 200
        metadata = discovery.json()
        assert metadata["issuer"] == issuer
        assert metadata["token_endpoint"] == f"{issuer}/token"
        assert metadata["introspection_endpoint"] == f"{issuer}/introspect"
        jwks = client.get(metadata["jwks_uri"]).json()
        first_kids = _kids(jwks)
        assert len(first_kids) == 2  # the active key and the published next key

        # The DPoP nonce dance (RFC 9449 §8): a proof without a nonce earns one.
        form = {"grant_type": "client_credentials", "scope": "read", "resource": API}
        auth = _basic("e2e-service", service_secret)
        endpoint = metadata["token_endpoint"]
        first = client.post(
            "/token", data=form, auth=auth, headers={"DPoP": create_proof(holder, "POST", endpoint)}
        )
        assert first.status_code == 400, first.text
        assert first.json()["error"] == "use_dpop_nonce"
        nonce = first.headers["DPoP-Nonce"]
        proof = create_proof(holder, "POST", endpoint, nonce=nonce)
        response = client.post("/token", data=form, auth=auth, headers={"DPoP": proof})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["token_type"], body["scope"]) == ("DPoP", "read")
        token = body["access_token"]

        parsed = parse(token, algorithms=["ES256"], typ="at+jwt")
        key = KeySet.from_jwks(jwks).find(parsed)
        assert key is not None
        claims = parsed.verify(key)
        assert (claims["iss"], claims["aud"], claims["client_id"]) == (issuer, API, "e2e-service")
        assert claims["cnf"] == {"jkt": holder.kid}

        introspected = client.post(
            "/introspect", data={"token": token}, auth=_basic("e2e-rs", introspector_secret)
        )
        assert introspected.status_code == 200, introspected.text
        assert introspected.json()["active"] is True
        assert introspected.json()["cnf"] == {"jkt": holder.kid}

        assert _stop(process) == 0

    assert list(run.iterdir()) == []  # nothing was written to the working directory

    # A restart finds the same keys, the same clients and the same ledger in the database.
    with (
        (tmp_path / "serve-again.log").open("w", encoding="utf-8") as log,
        _serve(run, config, port, log) as process,
        httpx.Client(base_url=issuer, timeout=30) as client,
    ):
        assert _kids(client.get("/jwks").json()) == first_kids
        introspected = client.post(
            "/introspect", data={"token": token}, auth=_basic("e2e-rs", introspector_secret)
        )
        assert introspected.json()["active"] is True
        assert _stop(process) == 0


def _started(tmp_path: Path) -> tuple[Path, Path, int]:
    """A fresh configuration (the starter's defaults) and a port for it: (run dir, config, port)."""
    port = _free_port()
    run = tmp_path / "run"
    run.mkdir()
    config = tmp_path / "deputize.yaml"
    _deputize(run, "init", "--output", str(config), "--issuer", f"http://127.0.0.1:{port}")
    return run, config, port


def _exchange_raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _flood(port: int, total: int) -> bytes:
    """Send header fields without end, ``total`` bytes in all, reading what comes back: the
    server should stop us (431, or a reset once it has closed) long before the end."""
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"GET /jwks HTTP/1.1\r\nHost: x\r\n")
            for _ in range(total // len(line)):
                sock.sendall(line)
            sock.sendall(b"\r\n")
            while chunk := sock.recv(65536):
                received += chunk
        except (BrokenPipeError, ConnectionResetError):
            return received + b"<connection closed by the server>"
    return received


def test_serve_bounds_each_request_head(tmp_path: Path) -> None:
    """``http.max_header_bytes`` (32 KiB by default): one 50 MB header line, or 200,000 fields,
    used to be read in full and answered 200."""
    run, config, port = _started(tmp_path)
    with (
        (tmp_path / "serve.log").open("w", encoding="utf-8") as log,
        _serve(run, config, port, log) as process,
    ):
        # A head within the bound, twice on one connection: the count starts again per request.
        fair = b"GET /jwks HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 24_000 + b"\r\n"
        both = _exchange_raw(port, fair + b"\r\n" + fair + b"Connection: close\r\n\r\n")
        assert both.count(b"HTTP/1.1 200 OK") == 2, both[:200]

        # A head still open past the bound: a JSON 431, and the connection closed.
        open_head = b"GET /jwks HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 40_000
        refused = _exchange_raw(port, open_head)
        head, _, body = refused.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), refused[:200]
        assert json.loads(body) == {
            "error": "invalid_request",
            "error_description": "request headers larger than 32768 bytes",
        }

        # 8 MB of fields: stopped long before the end.
        stopped = _flood(port, 8 * 1024 * 1024)
        assert stopped.startswith(b"HTTP/1.1 431 ") or stopped.endswith(b"closed by the server>")

        # What follows a head is no part of it: a 20 KB head and a 15 KB body in one write.
        form = b"grant_type=client_credentials&pad=" + b"p" * 15_000
        post = (
            b"POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nX-Fill: " + b"a" * 20_000
            + b"\r\nContent-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form
        )  # fmt: skip
        answered = _exchange_raw(port, post)
        assert answered.startswith(b"HTTP/1.1 401 "), answered[:200]  # no client: invalid_client
        assert b'"invalid_client"' in answered

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/jwks").status_code == 200  # still serving
        assert _stop(process) == 0


def test_serve_access_log_leaves_credentials_out(tmp_path: Path) -> None:
    """``--access-log`` wrote ``/logout?id_token_hint=<a whole ID token>`` as it came."""
    run, config, port = _started(tmp_path)
    id_token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
    with (
        (tmp_path / "serve.log").open("w", encoding="utf-8") as log,
        _serve(run, config, port, log, "--access-log") as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        client.get(
            "/logout",
            params={"id_token_hint": id_token, "state": "state-secret",
                    "post_logout_redirect_uri": "http://127.0.0.1:9/bye"},
        )  # fmt: skip
        client.get("/userinfo", params={"access_token": "access-token-secret"})
        client.get("/jwks", params={"id_token%5Fhint": "encoded-name-secret"})
        assert _stop(process) == 0
        assert process.stdout is not None
        logged = process.stdout.read()  # uvicorn writes its access log to stdout
    logged += (tmp_path / "serve.log").read_text(encoding="utf-8")
    assert "/logout?id_token_hint=...&state=...&post_logout_redirect_uri=http" in logged, logged
    assert "/userinfo?access_token=..." in logged
    for secret in (id_token, "c2lnbmF0dXJl", "state-secret", "access-token-secret",
                   "encoded-name-secret"):  # fmt: skip
        assert secret not in logged
