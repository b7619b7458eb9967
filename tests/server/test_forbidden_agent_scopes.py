"""``delegation.forbidden_agent_scopes``: never issued to an agent, by any grant.

Configuration refuses an agent registered for such a scope (``check-config``, server start and
``deputize clients add``), naming the key.  An agent registered at runtime before the scope was
forbidden still holds it in its row: every grant must leave it out, or refuse it when asked for.
Token exchange and hand-off redemption are attacked in ``test_delegation_attacks.py``
(``HELD_FORBIDDEN`` rows); the refresh grant is never an agent's (configuration refuses it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from delegation_support import (
    AGENT_SCOPES,
    DPOP_KEYS,
    FORBIDDEN,
    TOKEN_EXCHANGE,
    agent_clients,
    assertion,
    claims_of,
    delegation_config,
    register_at_runtime,
    start,
)
from signin_support import AGENT_REDIRECT, Browser, add_user, auth_params, obtain_code, pkce

from deputize.server.cli import main
from deputize.server.settings import ConfigError, parse_settings

from support import LiveServer, ServerFactory, assert_error


def _config(**agent: Any) -> dict[str, Any]:
    config = delegation_config()
    config["issuer"] = "https://auth.example.com"
    config["clients"][5] = {**config["clients"][5], **agent}
    return config


# --- configuration --------------------------------------------------------------------------------


def test_check_config_refuses_an_agent_registered_for_a_forbidden_scope() -> None:
    config = _config(scopes=[*AGENT_SCOPES, FORBIDDEN])
    assert config["clients"][5]["client_id"] == "agent-a"
    with pytest.raises(ConfigError) as refused:
        parse_settings(config, env={})
    assert str(refused.value).startswith("clients[5].scopes: 'payments:send'")
    assert "delegation.forbidden_agent_scopes" in str(refused.value)
    # The same scope on a client that is not an agent is fine.
    settings = parse_settings(_config(scopes=[FORBIDDEN], agent=False), env={})
    assert settings.clients[5].scopes == (FORBIDDEN,)


def test_check_config_command_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deputize.yaml"
    path.write_text(yaml.safe_dump(_config(scopes=[FORBIDDEN])), encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    assert "clients[5].scopes: 'payments:send' is in delegation.forbidden_agent_scopes" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("agent", "status"),
    [(True, 2), (False, 0)],
    ids=["clients add refuses an agent with a forbidden scope",
         "clients add accepts the scope for a client that is not an agent"],
)  # fmt: skip
def test_clients_add_refuses_a_forbidden_scope_for_an_agent(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str], agent: bool, status: int
) -> None:
    path = tmp_path / "deputize.yaml"
    config = {"issuer": "http://127.0.0.1:8000", "database": {"url": database_url},
              "delegation": {"forbidden_agent_scopes": [FORBIDDEN]}}  # fmt: skip
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["migrate", "--config", str(path)]) == 0
    argv = ["clients", "add", "--config", str(path), "--client-id", "new", "--scope", FORBIDDEN]
    assert main(argv + (["--agent"] if agent else [])) == status
    if agent:
        # The flag the user typed, not the config key behind it (item 7).
        assert "--scope: 'payments:send' is in delegation.forbidden_agent_scopes" in (
            capsys.readouterr().err
        )


# --- client_credentials ---------------------------------------------------------------------------


def own_token_response(server: LiveServer, **form: str) -> Any:
    return server.client.post(
        "/token",
        data={"grant_type": "client_credentials", **assertion(server, "agent-a"), **form},
        headers={"DPoP": server.proof(DPOP_KEYS["agent-a"])},
    )


def test_client_credentials_leaves_a_forbidden_scope_out(server_factory: ServerFactory) -> None:
    server = start(server_factory, held_forbidden=True)
    response = own_token_response(server)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == " ".join(AGENT_SCOPES)
    assert claims_of(response.json()["access_token"])["scope"] == " ".join(AGENT_SCOPES)


def test_client_credentials_refuses_a_forbidden_scope(server_factory: ServerFactory) -> None:
    server = start(server_factory, held_forbidden=True)
    refused = assert_error(own_token_response(server, scope=f"docs:read {FORBIDDEN}"), 400,
                           "invalid_scope")  # fmt: skip
    assert FORBIDDEN in refused["error_description"]


# --- authorization_code ---------------------------------------------------------------------------


def test_authorization_code_leaves_out_a_scope_forbidden_since_the_code_was_issued(
    server_factory: ServerFactory,
) -> None:
    """agent-d signs alice in on a server that forbids nothing yet, asking for payments:send;
    the code is redeemed at an instance whose configuration forbids it to agents: the token
    must not carry it."""
    agent_d = {
        **agent_clients()[3],
        "scopes": [*AGENT_SCOPES, FORBIDDEN],
        "grant_types": ["authorization_code", TOKEN_EXCHANGE],
        "redirect_uris": [AGENT_REDIRECT],
    }
    before = server_factory.start({"delegation": {"forbidden_agent_scopes": []}})
    register_at_runtime(before, [agent_d])
    add_user(before, "alice")
    verifier, challenge = pkce()
    browser = Browser(before)
    try:
        params = auth_params("agent-d", redirect_uri=AGENT_REDIRECT, challenge=challenge,
                             scope=f"openid docs:read {FORBIDDEN}")  # fmt: skip
        code = obtain_code(browser, params)["code"]
    finally:
        browser.close()

    after = server_factory.start({"delegation": {"forbidden_agent_scopes": [FORBIDDEN]}})
    response = after.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
              "redirect_uri": AGENT_REDIRECT, **assertion(after, "agent-d")},
        headers={"DPoP": after.proof(DPOP_KEYS["agent-d"])},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "openid docs:read"
    claims = claims_of(response.json()["access_token"])
    assert (claims["scope"], claims["act"]) == ("openid docs:read", {"sub": "agent-d"})
