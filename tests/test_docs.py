"""The docs stay true: every configuration key is documented, every configuration file shown
passes ``check-config``, and the quickstart runs as pasted.

Which YAML blocks are configuration files: every fenced ```` ```yaml ```` block in ``docs/`` and
``README.md`` whose top level is a mapping with an ``issuer`` key claims to be a whole file (a
file without ``issuer`` cannot be one: it is the only required key), and must pass the real
``deputize check-config`` with no ``DEPUTIZE_*`` variable set.  Blocks without ``issuer`` are
excerpts (a ``clients:`` list in sign-in.md) and are not run on their own.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deputize.keys import SigningKey
from deputize.server import cli, settings
from deputize.server.configuration.sections import Section

from support import LiveServer, ServerFactory

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"


def _keys_read_by_parser(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every key path the parser asks for, recorded while it reads a maximal configuration."""
    seen: set[str] = set()
    original = Section.raw

    def recording_raw(self: Section, name: str) -> Any:
        path = re.sub(r"\[\d+\]", "[]", self.key(name))
        seen.add(path)
        return original(self, name)

    monkeypatch.setattr(Section, "raw", recording_raw)
    key = SigningKey.generate()
    config = {
        "issuer": "https://auth.example.com",
        "clients": [
            {
                "client_id": "a",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [key.public_jwk()]},
            }
        ],
        "delegation": {"grants": [{"subject": "alice", "agents": ["a"]}]},
        "trusted_issuers": [
            {
                "issuer": "https://idp.example.com",
                "audience": "x",
                "jwks": {"keys": [key.public_jwk()]},
            }
        ],
    }
    settings.parse_settings(config, env={})
    return {p for p in seen if p not in ("clients", "trusted_issuers")} - {
        "database",
        "tokens",
        "dpop",
        "client_authentication",
        "keys",
        "http",
        "delegation",
        "status_list",
        "sign_in",
        "registration",
        "client_documents",
        "approvals",
        "approvals.webhook",
    }


def test_configuration_reference_documents_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = set(
        re.findall(r"^\| `([a-z_\[\].]+)` \|", (DOCS / "configuration.md").read_text(), re.M)
    )
    read = _keys_read_by_parser(monkeypatch)
    assert read - documented == set(), "keys the parser reads but the reference omits"
    assert documented - read == set(), "keys the reference documents but the parser ignores"


def _configuration_files() -> list[tuple[str, str]]:
    """(where, text) of every YAML block in the docs that is a whole configuration file."""
    found = []
    for path in [README, *sorted(DOCS.rglob("*.md"))]:
        blocks = re.findall(r"^```yaml\n(.*?)^```", path.read_text(), re.S | re.M)
        for number, block in enumerate(blocks, 1):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and "issuer" in data:
                found.append((f"{path.name} yaml block {number}", block))
    return found


_CONFIG_FILES = _configuration_files()


def test_the_docs_show_a_configuration_file() -> None:
    assert any(where.startswith("configuration.md") for where, _ in _CONFIG_FILES)


@pytest.mark.parametrize(
    "block",
    [text for _, text in _CONFIG_FILES],
    ids=[f"{where} passes check-config" for where, _ in _CONFIG_FILES],
)
def test_every_configuration_file_in_the_docs_passes_check_config(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("DEPUTIZE_"):
            monkeypatch.delenv(name)  # the file alone must be valid
    config = tmp_path / "deputize.yaml"
    config.write_text(block)
    status = cli.main(["check-config", str(config)])
    assert status == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"{config}: OK")


# --- the quickstart, run as pasted ---------------------------------------------------------

#: Stand-ins for what ./scripts/serve would set up: the venv's two commands, and a serve script
#: that (re)starts the server in the background, as the reader's first terminal would.
_DEPUTIZE = (
    '#!/bin/sh\nexec {python} -c "import sys; from deputize.server.cli import main; '
    'sys.exit(main())" "$@"\n'
)
_PYTHON = '#!/bin/sh\nexec {python} "$@"\n'
_SERVE = """#!/usr/bin/env bash
set -euo pipefail
up() {{ curl -s -o /dev/null http://127.0.0.1:{port}/jwks; }}
if [ ! -f deputize.yaml ]; then
  .venv/bin/deputize init --output deputize.yaml --issuer http://127.0.0.1:{port}
fi
if [ -f serve.pid ]; then  # "stop the server (Ctrl-C) and start it again"
  kill -INT "$(cat serve.pid)"
  for _ in $(seq 600); do up || break; sleep 0.05; done
fi
.venv/bin/deputize serve --config deputize.yaml --port {port} >>serve.log 2>&1 &
echo $! > serve.pid
for _ in $(seq 600); do up && exit 0; sleep 0.05; done
echo "the server did not start" >&2; cat serve.log >&2; exit 1
"""
#: Blocks the test does not run: installing by hand (the venv exists), and rotation (which
#: rightly refuses so soon after the first start).
_NOT_RUN = ("pip install", "keys rotate")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quickstart_script(text: str, folder: Path) -> tuple[str, list[str]]:
    """The quickstart's shell blocks as one script, its Python blocks saved where it says
    ("Save it as `get_token.py`"), and the output each Python block is shown to print."""
    commands, printed = [], []
    pieces = re.split(r"^```(\w+)\n(.*?)^```\n", text, flags=re.S | re.M)
    for i in range(1, len(pieces), 3):
        language, body = pieces[i], pieces[i + 1]
        if language == "sh" and not any(skip in body for skip in _NOT_RUN):
            commands.append(body)
        elif language == "python":
            name = re.findall(r"Save (?:it|this) as `([\w.]+)`", "".join(pieces[:i]))[-1]
            (folder / name).write_text(body)
            shown = re.match(r"```\n\n```text\n(.*?)```", text.split(body, 1)[1], re.S)
            assert shown is not None, f"the quickstart shows what {name} prints"
            printed.append(shown[1])
    return "set -euo pipefail\n" + "\n".join(commands), printed


def test_quickstart_runs_as_pasted(database_url: str, tmp_path: Path) -> None:
    """Every step, in order, in a fresh folder: serve, look, register, get a token, introspect
    and revoke, then an agent's key, a trusted issuer, a restart and the exchange."""
    port = _free_port()
    text = (DOCS / "quickstart.md").read_text().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    script, printed = _quickstart_script(text, tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / "scripts").mkdir()
    for path, content in (
        (tmp_path / ".venv" / "bin" / "deputize", _DEPUTIZE.format(python=sys.executable)),
        (tmp_path / ".venv" / "bin" / "python", _PYTHON.format(python=sys.executable)),
        (tmp_path / "scripts" / "serve", _SERVE.format(port=port)),
    ):
        path.write_text(content)
        path.chmod(0o755)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    if not database_url.startswith("sqlite"):
        env["DEPUTIZE_DATABASE_URL"] = database_url  # the same steps on PostgreSQL
    try:
        result = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
    finally:
        pid_file = tmp_path / "serve.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGINT)
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log
    out = result.stdout
    assert '"issuer": "http://127.0.0.1:' in out, "step 2: the discovery document"
    assert "Added client reporting (client_secret_basic)." in out, "step 3"
    assert re.search(r'\{"active":true,.*"cnf":\{"jkt":', out), "step 5: introspection"
    assert out.count('{"active":false}') == 1, "step 5: revoked"
    assert "deputize.yaml: OK" in out and "trusted issuers   1" in out, "step 7: the config"
    for shown in printed:
        assert shown in out, "each script prints what the quickstart shows"
    assert printed[-1].startswith("DPoP alice {'sub': 'report-agent'}")


# --- the SDK and verifier guides: their runnable block runs as written ----------------------

_GUIDE_AGENTS = ("scheduling-agent", "analysis-agent")
_GUIDE_KEYS = {name: SigningKey.generate("ES256") for name in _GUIDE_AGENTS}


@pytest.fixture
def guide_server(server_factory: ServerFactory) -> LiveServer:
    from delegation_support import IDP, IDP_AUDIENCE, IDP_KEY, TOKEN_EXCHANGE

    return server_factory.start(
        {
            "clients": [
                {
                    "client_id": name,
                    "agent": True,
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks": {"keys": [_GUIDE_KEYS[name].public_jwk()]},
                    "grant_types": ["client_credentials", TOKEN_EXCHANGE],
                    "scopes": ["docs:read", "docs:write"],
                    "audiences": ["https://docs.example.com", "https://tools.example.com/mcp"],
                }
                for name in _GUIDE_AGENTS
            ],
            "trusted_issuers": [
                {"issuer": IDP, "audience": IDP_AUDIENCE, "jwks": {"keys": [IDP_KEY.public_jwk()]}}
            ],
            "delegation": {"grants": [{"subject": "alice", "agents": ["scheduling-agent"]}]},
        }
    )


@pytest.mark.parametrize(
    ("guide", "expected"),
    [
        (
            "agent-sdk.md",
            "DPoP alice {'sub': 'scheduling-agent'} docs:read docs:write\n"
            "{'sub': 'analysis-agent', 'act': {'sub': 'scheduling-agent'}} docs:read\n"
            "invalid_scope\n",
        ),
        (
            "verifier.md",
            "{'doc': '1', 'for': 'alice', 'by': ['scheduling-agent']}\n"
            '403 DPoP error="insufficient_scope"\n'
            "401\n",
        ),
    ],
    ids=["the agent SDK guide runs as written", "the verifier guide runs as written"],
)
def test_guide_code_runs(
    guide_server: LiveServer, tmp_path: Path, guide: str, expected: str
) -> None:
    from delegation_support import user_token

    from deputize.agent import save_key

    text = (DOCS / guide).read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    printed = text.split(code, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert printed == expected, "the guide shows what the code prints"
    env = {**os.environ, "DEPUTIZE_URL": guide_server.url, "USER_TOKEN": user_token()}
    for name, variable in zip(_GUIDE_AGENTS, ("SCHEDULER_KEY", "ANALYST_KEY"), strict=True):
        save_key(_GUIDE_KEYS[name], tmp_path / f"{name}.jwk")
        env[variable] = str(tmp_path / f"{name}.jwk")
    script = tmp_path / "guide.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_verifier_guide_mcp_section_runs(guide_server: LiveServer, tmp_path: Path) -> None:
    """verifier.md's "MCP servers" block: the real MCP SDK behind deputize.verifier.mcp, called
    by an agent with a DPoP-bound token (through the SDK-preferred httpx2 TestClient)."""
    from delegation_support import user_token

    from deputize.agent import save_key

    section = (DOCS / "verifier.md").read_text().split("## MCP servers", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    printed = section.split(code, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert printed == (
        "alice via scheduling-agent\n"
        '401 DPoP algs="ES256 ES384 EdDSA RS256 PS256"\n'
        "https://tools.example.com/mcp\n"
    ), "the guide shows what the code prints"
    save_key(_GUIDE_KEYS["scheduling-agent"], tmp_path / "scheduler.jwk")
    env = {
        **os.environ,
        "DEPUTIZE_URL": guide_server.url,
        "USER_TOKEN": user_token(),
        "SCHEDULER_KEY": str(tmp_path / "scheduler.jwk"),
    }
    script = tmp_path / "mcp_guide.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)], capture_output=True, text=True, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed


def test_sign_in_guide_code_runs(server_factory: Any, tmp_path: Path) -> None:
    """sign-in.md's two Python snippets: the authorize URL, and redeeming and refreshing."""
    from signin_support import (
        WEB_REDIRECT,
        WEB_SECRET,
        Browser,
        auth_params,
        obtain_code,
        pkce,
        start,
    )

    build_url, redeem = re.findall(r"```python\n(.*?)```", (DOCS / "sign-in.md").read_text(), re.S)
    url_script = tmp_path / "authorize_url.py"
    url_script.write_text(build_url)
    result = subprocess.run(
        [sys.executable, str(url_script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "code_challenge_method=S256" in result.stdout

    server = start(server_factory)
    browser = Browser(server)
    try:
        verifier, challenge = pkce()
        params = auth_params(challenge=challenge)
        code = obtain_code(browser, params)["code"]
    finally:
        browser.close()
    script = tmp_path / "redeem.py"
    script.write_text(redeem)
    env = {
        **os.environ,
        "DEPUTIZE_URL": server.url,
        "CLIENT_ID": "web-app",
        "CLIENT_SECRET": WEB_SECRET,
        "REDIRECT_URI": WEB_REDIRECT,
        "CODE": code,
        "VERIFIER": verifier,
    }
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("DPoP [") and "'refresh_token'" in lines[0]
    assert lines[1] == "refreshed True"


def test_mcp_guide_shows_the_example_as_it_runs() -> None:
    """mcp.md's Python blocks are the example's code, verbatim (tests/interop/
    test_mcp_example.py runs the example and checks it prints what the guide shows), and it
    links the guide from the index and the README."""
    example = "\n".join(
        path.read_text() for path in sorted((DOCS.parent / "examples" / "mcp").glob("*.py"))
    )
    text = (DOCS / "mcp.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        assert block in example, f"not in examples/mcp/: {block[:80]!r}"
    assert "(mcp.md)" in (DOCS / "index.md").read_text()
    assert "(docs/mcp.md)" in README.read_text()
