"""The docs stay true: every configuration key is documented, and the quickstart's code runs."""

from __future__ import annotations

import os
import re
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
    }


def test_configuration_reference_documents_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = set(
        re.findall(r"^\| `([a-z_\[\].]+)` \|", (DOCS / "configuration.md").read_text(), re.M)
    )
    read = _keys_read_by_parser(monkeypatch)
    assert read - documented == set(), "keys the parser reads but the reference omits"
    assert documented - read == set(), "keys the reference documents but the parser ignores"


def test_configuration_example_is_valid() -> None:
    text = (DOCS / "configuration.md").read_text()
    example = text.split("## A complete example", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    env = {
        "DEPUTIZE_CLIENT_SECRET_REPORTING_SERVICE": "s" * 40,
        "DEPUTIZE_CLIENT_SECRET_HTTPS___CALENDAR_EXAMPLE_COM": "c" * 40,
    }
    parsed = settings.parse_settings(yaml.safe_load(example), env=env)
    assert [c.client_id for c in parsed.clients][:2] == ["reporting-service", "scheduling-agent"]


def test_quickstart_code_runs(
    server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deputize.yaml"
    config.write_text(
        yaml.safe_dump({"issuer": server.url, "database": {"url": server.settings.database_url}})
    )
    assert (
        cli.main(
            [
                "clients",
                "add",
                "--config",
                str(config),
                "--client-id",
                "reporting",
                "--scope",
                "reports:read",
                "--audience",
                "https://reports.example.com",
            ]
        )
        == 0
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    quickstart = (DOCS / "quickstart.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", quickstart, re.S)
    script = tmp_path / "get_token.py"
    script.write_text(code)
    env = {
        **os.environ,
        "DEPUTIZE_URL": server.url,
        "CLIENT_ID": "reporting",
        "CLIENT_SECRET": secret,
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "DPoP reports:read 300"


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
                    "audiences": ["https://docs.example.com"],
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
