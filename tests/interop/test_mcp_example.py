"""The MCP example (examples/mcp/) runs as users run it: ``deputize serve``, the MCP server and
the identity provider as separate processes over real HTTP, with the real ``mcp`` package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
GUIDE = ROOT / "docs" / "mcp.md"


def test_the_mcp_sdk_signs_in_and_agents_delegate_to_the_same_tools() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.mcp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    def line(prefix: str) -> str:
        matches = [entry.strip() for entry in out.splitlines() if entry.strip().startswith(prefix)]
        assert matches, f"no line starting with {prefix!r} in:\n{out}"
        return matches[0]

    # The SDK registered itself (RFC 7591), signed alice in and got a token for both scopes.
    registered = line("registered as ")
    assert "token_type=Bearer" in registered and "docs:read" in registered, registered
    assert "docs:write" in registered, registered
    assert line("tools:") == "tools: read_document, write_document"
    # Her own client acts for her with no agent in between.
    read = line("read_document:")
    assert "'for': 'alice'" in read and "'chain': []" in read, read
    assert "Q3 report" in read, read
    assert "'written': '2'" in line("write_document:")

    # The agents: research-agent acts for alice; summary-agent holds a read-only piece.
    assert line("research-agent holds:") == (
        "research-agent holds: DPoP sub=alice act={'sub': 'research-agent'} "
        "scope=docs:read docs:write"
    )
    assert line("summary-agent holds:") == (
        "summary-agent holds: DPoP sub=alice act={'sub': 'summary-agent', 'act': "
        "{'sub': 'research-agent'}} scope=docs:read"
    )
    # The tool sees the whole chain (oldest agent first), and the narrower scope holds.
    delegated = line("summary-agent read_document:")
    assert "'for': 'alice'" in delegated, delegated
    assert "'chain': ['research-agent', 'summary-agent']" in delegated, delegated
    assert "'client': 'summary-agent'" in delegated, delegated
    refused = line("summary-agent write_document:")
    assert refused.endswith("insufficient_scope: this tool needs docs:write"), refused

    # docs/mcp.md shows this output, but for the ports and the registered client's ID.
    client_id = registered.removeprefix("registered as ").split(";")[0]
    shown = GUIDE.read_text().split("## 5. The example's output", 1)[1]
    shown = shown.split("```text\n", 1)[1].split("```", 1)[0]
    normalised = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", out).replace(client_id, "CLIENT_ID")
    assert normalised == shown, "docs/mcp.md shows what the example prints"
