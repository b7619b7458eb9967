"""``SIGHUP`` reads the delegation policy again in a real ``deputize serve`` process: the next
decision names the new policy's hash; a policy that no longer loads changes nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deputize.server.clients.secrets import hash_secret

pytestmark = pytest.mark.e2e

SECRET = "a-gateway-secret-long-enough-for-the-rule"
POLICY: dict[str, Any] = {
    "roles": {"viewer": {"permissions": ["documents:read"]}},
    "profiles": {"agent": {"allow": ["documents:*"]}},
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_for(stream: Any, text: str) -> None:
    """Read the server's log until ``text`` appears (the server says when it reloaded)."""
    for line in stream:
        if text in line:
            return
    raise AssertionError(f"the server ended without logging {text!r}")


def test_sighup_reloads_the_policy_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    port = _port()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(POLICY))
    config = tmp_path / "deputize.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "issuer": f"http://127.0.0.1:{port}",
                "database": {"url": f"sqlite:///{tmp_path / 'd.db'}"},
                "policy": "policy.yaml",
                "clients": [
                    {
                        "client_id": "gateway",
                        "token_endpoint_auth_method": "client_secret_basic",
                        "client_secret_hash": hash_secret(SECRET),
                        "can_decide": True,
                    }
                ],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPUTIZE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "deputize.server.cli", "serve", "--config", str(config),
         "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()  # "Deputize listening on ..."
        claims = '{"sub": "alice", "client_id": "agent", "act": {"sub": "agent"}, ' \
                 '"roles": ["viewer"], "scope": "documents:read"}'  # fmt: skip

        def ask() -> dict[str, str]:
            response = httpx.post(
                f"http://127.0.0.1:{port}/decide",
                data={"claims": claims, "action": "read", "resource": "documents:/a"},
                auth=("gateway", SECRET),
                timeout=10,
            )
            assert response.status_code == 200, response.text
            answer: dict[str, str] = response.json()
            return answer

        first = ask()
        assert first["decision"] == "allow"
        rule = {"name": "reads-wait", "tier": "supervised", "permissions": ["documents:read"]}
        tiered = {**POLICY, "tiers": {"rules": [rule]}}
        policy_file.write_text(yaml.safe_dump(tiered))
        process.send_signal(signal.SIGHUP)
        _wait_for(process.stderr, "policy reloaded")
        second = ask()
        assert (second["decision"], second["rule"]) == ("supervised", "tiers.reads-wait")
        assert second["policy"] != first["policy"]

        policy_file.write_text(yaml.safe_dump({**POLICY, "roles": {"a": {"extends": ["a"]}}}))
        process.send_signal(signal.SIGHUP)
        _wait_for(process.stderr, "policy not reloaded")
        assert ask()["policy"] == second["policy"]  # the last policy that loaded stays
    finally:
        process.terminate()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
