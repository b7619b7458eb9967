"""Shared set-up for delegation tests: an example identity provider, agents and exchange helpers."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import Any

import httpx
from sqlalchemy import select

from deputize.keys import SigningKey, sign
from deputize.server.storage.database import Database
from deputize.server.storage.tables import issued_tokens
from deputize.server.storage.tokens import TokenRecord

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


#: The agents' scopes.  ``payments:send`` is in ``delegation.forbidden_agent_scopes``, so
#: check-config refuses an agent registered for it; see ``start(held_forbidden=True)``.
AGENT_SCOPES = ("docs:read", "docs:write", "mail:send")
FORBIDDEN = "payments:send"


def agent_clients(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    scopes: tuple[str, ...] = AGENT_SCOPES,
) -> list[dict[str, Any]]:
    """The agents' config entries; ``overrides`` maps an agent to entries replacing its own."""
    return [
        {
            "client_id": name,
            "agent": True,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [AUTH_KEYS[name].public_jwk()]},
            "grant_types": ["client_credentials", TOKEN_EXCHANGE],
            "scopes": list(scopes),
            "audiences": [DOCS, MAIL],
            **(overrides or {}).get(name, {}),
        }
        for name in AGENTS
    ]


def delegation_config(
    *,
    agent_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    agent_scopes: tuple[str, ...] = AGENT_SCOPES,
    **delegation: Any,
) -> dict[str, Any]:
    """Overrides for ServerFactory.start: standard clients plus the agents and the example IdP."""
    from support import standard_clients

    return {
        "clients": standard_clients() + agent_clients(agent_overrides, scopes=agent_scopes),
        "trusted_issuers": [
            {"issuer": IDP, "audience": IDP_AUDIENCE, "jwks": {"keys": [IDP_KEY.public_jwk()]}}
        ],
        "delegation": {
            "grants": [{"subject": "alice", "agents": ["agent-a"]}],
            "forbidden_agent_scopes": ["payments:send"],
            **delegation,
        },
    }


def start(
    factory: ServerFactory,
    *,
    agent_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    held_forbidden: bool = False,
    **delegation: Any,
) -> LiveServer:
    """A live server with the agents; ``delegation`` overrides the ``delegation`` section and
    ``agent_overrides`` entries of single agents (e.g. ``{"agent-a": {"max_token_lifetime": 30}}``).

    ``held_forbidden``: the agents are registered at runtime (database rows, as ``deputize
    clients add`` made them before ``payments:send`` was forbidden) with ``payments:send``
    among their scopes — what every grant must still never issue to an agent.
    """
    if not held_forbidden:
        return factory.start(delegation_config(agent_overrides=agent_overrides, **delegation))
    config = delegation_config(
        agent_overrides=agent_overrides, agent_scopes=(*AGENT_SCOPES, FORBIDDEN), **delegation
    )
    held = [c for c in config["clients"] if c.get("agent") and FORBIDDEN in c["scopes"]]
    config["clients"] = [c for c in config["clients"] if c not in held]
    server = factory.start(config)
    register_at_runtime(server, held)
    return server


def register_at_runtime(server: LiveServer, entries: list[Mapping[str, Any]]) -> None:
    """Clients as database rows (``deputize clients add``), which every request reads afresh;
    added straight to the table, as a registration older than today's checks would be."""
    from deputize.server.settings import parse_client
    from deputize.server.storage import clients as client_rows

    async def run() -> None:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                for entry in entries:
                    client = parse_client(dict(entry), "test client", env={})
                    await client_rows.add(conn, client, int(server.clock()), by="test")
        finally:
            await db.dispose()

    asyncio.run(run())


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
    proof: str | None = None,
    **params: str,
) -> httpx.Response:
    """Agent ``agent`` exchanges ``subject_token``.  The proof covers the subject token (ath)
    when it is one of ours, unless ``ath`` says otherwise; ``proof`` replaces it outright."""
    if proof is None:
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


def ledger(server: LiveServer) -> dict[str, TokenRecord]:
    """Every token the server has recorded as issued, by jti, read straight from its database."""

    async def load() -> dict[str, TokenRecord]:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                rows = (await conn.execute(select(issued_tokens))).all()
        finally:
            await db.dispose()
        return {row.jti: TokenRecord(**row._mapping) for row in rows}

    return asyncio.run(load())
