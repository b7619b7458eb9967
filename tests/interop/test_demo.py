"""The demo (examples/demo.py) runs as users run it: separate processes over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_demo_tells_the_whole_story() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    lines = out.splitlines()

    def line(prefix: str, after: str = "") -> str:
        start = out.index(after) if after else 0
        matches = [entry for entry in out[start:].splitlines() if entry.strip().startswith(prefix)]
        assert matches, f"no line starting with {prefix!r} in:\n{out}"
        return matches[0]

    assert "act={'sub': 'analysis-agent', 'act': {'sub': 'scheduling-agent'}}" in out
    assert "scope=docs:read\n" in out + "\n"
    assert line("analysis-agent reads document 1").startswith(
        "  analysis-agent reads document 1: 200"
    )
    assert "'chain': ['scheduling-agent', 'analysis-agent']" in out
    assert line("analysis-agent writes document 1").endswith(
        "403 insufficient_scope (token lacks the scope this resource needs: docs:write)"
    )
    assert line("scheduling-agent asks for docs:delete").startswith(
        "  scheduling-agent asks for docs:delete: refused, invalid_scope (scope docs:delete: "
        "tier supervised"
    )
    assert "rule tiers.users-never-for-agents" in line("scheduling-agent asks for users:read")
    assert "rule profiles.analysis-agent.allow" in line(
        "scheduling-agent hands docs:write to analysis-agent"
    )
    revoked = "4. deputize revoke --task quarterly-report"
    assert line("Revoked", after=revoked).strip() == (
        "Revoked 2 live token(s), including every token delegated from them; "
        "closed 1 spent hand-off(s) with them."
    )
    for agent in ("scheduling-agent", "analysis-agent"):
        assert line(f"{agent} reads document 1", after=revoked).endswith(
            "401 invalid_token (token has been revoked)"
        )
    audit = out[out.index("5. the audit trail") :]
    assert audit.count("token_issued") == 3 and audit.count('"policy": ') == 3
    assert audit.count("exchange_refused") == 3
    assert "token_revoked" in audit and '"task": "quarterly-report"' in audit
    assert "chain=alice > scheduling-agent > analysis-agent" in audit
    assert len(lines) > 10
