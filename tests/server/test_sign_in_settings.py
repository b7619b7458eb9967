"""Configuration of sign-in: public clients, redirect URIs, refresh tokens, sign_in.*."""

from __future__ import annotations

from typing import Any

import pytest

from deputize.server.clients.secrets import hash_secret
from deputize.server.settings import ConfigError, parse_settings

SECRET_HASH = hash_secret("s" * 40)


def config(client: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    entry = {
        "client_id": "app",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://app.example.com/cb"],
        **(client or {}),
    }
    return {"issuer": "https://auth.example.com", "clients": [entry], **top}


@pytest.mark.parametrize(
    ("client", "top", "message"),
    [
        ({"client_secret_hash": SECRET_HASH}, {}, "clients[0]: a public client (none) holds no"),
        ({"grant_types": ["client_credentials"]}, {}, "clients[0].grant_types: a public client"),
        ({"dpop_bound_access_tokens": False}, {}, "clients[0].dpop_bound_access_tokens: must"),
        ({"redirect_uris": []}, {}, "clients[0].redirect_uris: required for"),
        ({"grant_types": ["refresh_token"]}, {}, "clients[0].grant_types: refresh_token is only"),
        ({"agent": True, "token_endpoint_auth_method": "client_secret_basic",
          "client_secret_hash": SECRET_HASH}, {}, "clients[0].grant_types: an agent"),
        ({"redirect_uris": ["http://app.example.com/cb"]}, {}, "must use https"),
        ({"redirect_uris": ["https://app.example.com/cb#x"]}, {}, "without fragment"),
        ({"redirect_uris": ["/cb"]}, {}, "must be absolute"),
        ({"redirect_uris": ["myapp:/cb"]}, {}, "reverse domain name"),
        ({"post_logout_redirect_uris": ["http://evil.example/"]}, {}, "must use https"),
        ({"delegate_agents": ["has space"]}, {}, "is not a client_id"),
        ({}, {"tokens": {"refresh_token_lifetime": 7200, "refresh_token_max_lifetime": 3600}},
         "tokens.refresh_token_max_lifetime: must be at least"),
        ({}, {"sign_in": {"max_failed_attempts": 0}}, "sign_in.max_failed_attempts"),
        ({}, {"sign_in": {"lockout": 5}}, "sign_in.lockout"),
        ({}, {"sign_in": {"code_lifetime": 3600}}, "sign_in.code_lifetime"),
        ({}, {"sign_in": {"remember_me": True}}, "sign_in.remember_me: unknown key"),
    ],
    ids=[
        "refuses a secret on a public client",
        "refuses client_credentials for a public client",
        "refuses an unbound public client",
        "requires redirect_uris for the code grant",
        "refuses refresh_token without the code grant",
        "refuses refresh tokens for an agent",
        "refuses an http redirect URI off loopback",
        "refuses a redirect URI with a fragment",
        "refuses a relative redirect URI",
        "refuses a custom scheme that is not a reverse domain",
        "checks post-logout redirect URIs too",
        "refuses a malformed delegate agent",
        "refuses a family shorter than one refresh token",
        "refuses no sign-in attempts at all",
        "refuses a lockout too short to matter",
        "refuses an hour-long authorization code",
        "refuses an unknown sign_in key",
    ],
)  # fmt: skip
def test_invalid_sign_in_configuration_names_the_key(
    client: dict[str, Any], top: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(config(client, **top), env={})
    assert message in str(raised.value)


def test_valid_sign_in_configuration_and_defaults() -> None:
    settings = parse_settings(
        config({"redirect_uris": ["com.example.app:/cb", "http://127.0.0.1:8765/cb"],
                "delegate_agents": ["summary-agent"]}),
        env={},
    )  # fmt: skip
    (client,) = settings.clients
    assert client.redirect_uris == ("com.example.app:/cb", "http://127.0.0.1:8765/cb")
    assert client.delegate_agents == ("summary-agent",)
    assert (settings.session_lifetime, settings.max_failed_sign_ins, settings.sign_in_lockout) == (
        8 * 3600, 5, 900,
    )  # fmt: skip
    assert (settings.code_lifetime, settings.consent_lifetime) == (60, 90 * 86_400)
    assert (settings.refresh_token_lifetime, settings.refresh_token_max_lifetime) == (
        86_400, 30 * 86_400,
    )  # fmt: skip
