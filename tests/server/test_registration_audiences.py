"""``registration.allowed_audiences``: the resources (RFC 8707) a self-registered client may ask
tokens for.  The MCP SDK sends ``resource`` (its MCP server's URL) in every authorization and
token request, so without it a registered client could never sign a person in for a tool."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from signin_support import Browser, auth_params, obtain_code, pkce, start

from deputize.server import cli
from deputize.server.configuration.sections import ConfigError
from deputize.server.settings import parse_settings

from support import LiveServer, ServerFactory

REDIRECT = "http://127.0.0.1:33418/callback"
TOOLS = "https://tools.example.com/mcp"


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(
        server_factory,
        registration={
            "mode": "open",
            "allowed_scopes": ["docs:read"],
            "allowed_audiences": [TOOLS],
            "allow_bearer_for_public_clients": True,
        },
    )


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.close()


def registered_client(server: LiveServer) -> str:
    response = server.client.post(
        "/register",
        json={
            "client_name": "MCP client",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "docs:read",
        },
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def test_a_registered_client_gets_a_token_for_an_allowed_resource(
    server: LiveServer, browser: Browser
) -> None:
    client_id = registered_client(server)
    verifier, challenge = pkce()
    params = auth_params(client_id, redirect_uri=REDIRECT, scope="docs:read",
                         challenge=challenge, resource=TOOLS)  # fmt: skip
    code = obtain_code(browser, params)["code"]
    response = server.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
              "redirect_uri": REDIRECT, "client_id": client_id, "resource": TOOLS},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    payload = body["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] in (TOOLS, [TOOLS])  # RFC 8707: the token is for that resource


@pytest.mark.parametrize(
    "resource",
    [
        "https://other.example.com/mcp",
        "https://tools.example.com/mcp/",
        "https://tools.example.com",
    ],
    ids=["refuses another resource", "refuses a trailing slash", "refuses the bare origin"],
)
def test_a_registered_client_is_refused_other_resources(
    server: LiveServer, browser: Browser, resource: str
) -> None:
    client_id = registered_client(server)
    params = auth_params(client_id, redirect_uri=REDIRECT, scope="docs:read", resource=resource)
    result = obtain_code(browser, params)
    assert result["error"] == "invalid_target", result


def _config(**registration: Any) -> dict[str, Any]:
    return {"issuer": "https://auth.example.com", "registration": registration}


@pytest.mark.parametrize(
    "value",
    ["tools.example.com/mcp", "https://tools.example.com/mcp#frag", "/mcp"],
    ids=["refuses a relative URI", "refuses a fragment", "refuses a path alone"],
)
def test_allowed_audiences_must_be_absolute_uris(value: str) -> None:
    with pytest.raises(ConfigError, match=r"registration\.allowed_audiences"):
        parse_settings(_config(mode="open", allowed_audiences=[value]), env={})


def test_check_config_accepts_allowed_audiences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "deputize.yaml"
    config.write_text(
        "issuer: https://auth.example.com\n"
        "registration:\n  mode: open\n  allowed_audiences: [https://tools.example.com/mcp]\n"
    )
    assert cli.main(["check-config", str(config)]) == 0, capsys.readouterr().err
