"""Shared set-up for delegation tests: an example identity provider, agents and exchange helpers."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

from deputize.keys import SigningKey, sign

from support import JWT_BEARER, LiveServer, ServerFactory

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
IDP = "https://idp.example.com"
IDP_AUDIENCE = "deputize"
IDP_KEY = SigningKey.generate("ES256")
DOCS = "https://docs.example.com"
MAIL = "https://mail.example.com"
AGENTS = ("agent-a", "agent-b", "agent-c", "agent-d")
#: Each agent's client-authentication key and, separately, its DPoP key.
AUTH_KEYS = {name: SigningKey.generate("ES256") for name in AGENTS}
DPOP_KEYS = {name: SigningKey.generate("ES256") for name in AGENTS}


def agent_clients() -> list[dict[str, Any]]:
    return [
        {
            "client_id": name,
            "agent": True,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [AUTH_KEYS[name].public_jwk()]},
            "grant_types": ["client_credentials", TOKEN_EXCHANGE],
            "scopes": ["docs:read", "docs:write", "mail:send", "payments:send"],
            "audiences": [DOCS, MAIL],
        }
        for name in AGENTS
    ]


def delegation_config(**delegation: Any) -> dict[str, Any]:
    """Overrides for ServerFactory.start: standard clients plus the agents and the example IdP."""
    from support import standard_clients

    return {
        "clients": standard_clients() + agent_clients(),
        "trusted_issuers": [
            {"issuer": IDP, "audience": IDP_AUDIENCE, "jwks": {"keys": [IDP_KEY.public_jwk()]}}
        ],
        "delegation": {
            "grants": [{"subject": "alice", "agents": ["agent-a"]}],
            "forbidden_agent_scopes": ["payments:send"],
            **delegation,
        },
    }


def start(factory: ServerFactory, **delegation: Any) -> LiveServer:
    return factory.start(delegation_config(**delegation))


def user_token(
    sub: str = "alice",
    *,
    key: SigningKey = IDP_KEY,
    iss: str = IDP,
    aud: str = IDP_AUDIENCE,
    lifetime: int = 3600,
    typ: str = "JWT",
    **claims: Any,
) -> str:
    """A token from the example identity provider, as a person's app would hold it."""
    now = int(time.time())
    body = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + lifetime, **claims}
    return sign(body, key, typ=typ)


def assertion(server: LiveServer, agent: str) -> dict[str, str]:
    return {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": server.assertion(agent, AUTH_KEYS[agent]),
    }


def own_token(server: LiveServer, agent: str) -> str:
    """The agent's own DPoP-bound client_credentials token (its identity, for actor_token)."""
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials", **assertion(server, agent)},
        headers={"DPoP": server.proof(DPOP_KEYS[agent])},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def exchange(
    server: LiveServer,
    agent: str,
    subject_token: str,
    *,
    subject_type: str = ACCESS_TOKEN,
    dpop_key: SigningKey | None = None,
    ath: bool | None = None,
    **params: str,
) -> httpx.Response:
    """Agent ``agent`` exchanges ``subject_token``.  The proof covers the subject token (ath)
    when it is one of ours, unless ``ath`` says otherwise."""
    key = dpop_key or DPOP_KEYS[agent]
    covered = subject_type == ACCESS_TOKEN if ath is None else ath
    proof = server.proof(key, access_token=subject_token if covered else None)
    form: dict[str, Any] = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": subject_type,
        **assertion(server, agent),
        **params,
    }
    return server.client.post("/token", data=form, headers={"DPoP": proof})


def start_chain(server: LiveServer, **params: Any) -> str:
    """alice -> agent-a: the first hop, from alice's identity-provider token."""
    response = exchange(server, "agent-a", user_token(), subject_type=JWT, **params)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def claims_of(token: str) -> dict[str, Any]:
    """Decode without verifying — for reading what a test just received from the server."""
    import base64
    import json

    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def introspect(server: LiveServer, token: str) -> dict[str, Any]:
    response = server.client.post(
        "/introspect", data={"token": token}, headers=server.basic("resource-server")
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def fresh_jti() -> str:
    return secrets.token_urlsafe(8)
