"""The MCP example, as separate processes over HTTP, in one command:

    .venv/bin/python -m examples.mcp

1. Deputize (``deputize serve``, configured by ``examples/mcp/deputize.yaml``), alice's identity
   provider and the MCP server (``examples/mcp/server.py``) start on loopback ports.
2. alice's MCP client — the official MCP SDK, unmodified (``examples/mcp/client.py``) —
   registers itself at Deputize, signs her in (PKCE, ``resource``) and calls both tools.
3. research-agent exchanges alice's token for its own and hands a read-only piece to
   summary-agent, which calls the same MCP server with DPoP (``examples/mcp/agents.py``): the
   tool sees summary-agent acting for research-agent acting for alice, and the write is
   refused.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from deputize.keys import SigningKey
from examples.demo import DEPUTIZE, free_port, process

from .agents import delegate
from .client import call_tools

HERE = Path(__file__).resolve().parent
#: alice's password at Deputize (this example's throwaway database only).
PASSWORD = "correct horse battery staple"


def config(template: str, issuer: str, mcp_url: str, idp: str, work: Path) -> dict[str, Any]:
    """``deputize.yaml`` with this run's ports, database and the agents' public keys."""
    mcp_origin = mcp_url.removesuffix("/mcp")
    text = (
        template.replace("http://127.0.0.1:8000", issuer)
        .replace("http://127.0.0.1:8001", mcp_origin)
        .replace("http://127.0.0.1:8002", idp)
    )
    data: dict[str, Any] = yaml.safe_load(text)
    data["database"] = {"url": f"sqlite:///{work / 'deputize.db'}"}
    return data


def main() -> int:
    keys = {name: SigningKey.generate("ES256") for name in ("research-agent", "summary-agent")}
    with tempfile.TemporaryDirectory(prefix="deputize-mcp-") as tmp:
        work = Path(tmp)
        log = (work / "servers.log").open("w")
        issuer = f"http://127.0.0.1:{free_port()}"
        python = sys.executable
        with (
            process([python, "-m", "examples.identity_provider"], log, expect="listening on")
            as idp_line,
            process([python, "-m", "examples.mcp.server", "--issuer", issuer], log,
                    expect="listening on") as mcp_line,
        ):  # fmt: skip
            idp, mcp_url = idp_line.split()[-1], mcp_line.split()[-1]
            data = config((HERE / "deputize.yaml").read_text(), issuer, mcp_url, idp, work)
            for client in data["clients"]:
                client["jwks"] = {"keys": [keys[client["client_id"]].public_jwk()]}
            path = work / "deputize.yaml"
            path.write_text(yaml.safe_dump(data))
            _add_user(path, "alice")
            port = issuer.rsplit(":", 1)[1]
            serve = [str(DEPUTIZE), "serve", "--config", str(path), "--port", port]
            with process(serve, log, expect="Deputize listening"):
                print(f"1. Deputize at {issuer}, the MCP server at {mcp_url}")
                print("2. alice's MCP client (the MCP SDK) signs her in and calls the tools")
                for line in asyncio.run(call_tools(mcp_url, "alice", PASSWORD)):
                    print("  " + line)
                print("3. research-agent acts for alice and hands a read-only piece on")
                user_token = httpx.post(f"{idp}/login", json={"username": "alice"})
                lines = asyncio.run(
                    delegate(issuer, mcp_url, user_token.json()["access_token"], keys)
                )
                for line in lines:
                    print("  " + line)
        log.close()
    return 0


def _add_user(config_path: Path, username: str) -> None:
    result = subprocess.run(
        [str(DEPUTIZE), "users", "add", "--config", str(config_path), username,
         "--name", "Alice Example", "--password-stdin"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"deputize users add failed: {result.stderr}")


if __name__ == "__main__":
    raise SystemExit(main())
