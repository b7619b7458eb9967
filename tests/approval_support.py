"""Shared set-up for the approval tests (OpenID CIBA, poll mode): a policy where deleting a
document is supervised, agents allowed the CIBA grant, and the agent's side of the flow."""

from __future__ import annotations

import json
from typing import Any

import httpx
from delegation_support import DPOP_KEYS, JWT, assertion, exchange, user_token

from deputize.server.settings import CIBA

from support import LiveServer

POLICY: dict[str, Any] = {
    "types": {"docs": {"actions": ["read", "write", "delete"]}},
    "roles": {
        "viewer": {"permissions": ["docs:read"]},
        "admin": {"extends": ["viewer"], "permissions": ["docs:write", "docs:delete"]},
    },
    "profiles": {
        "scheduler": {"allow": ["docs:*"], "delegate_to": ["analyst"]},
        "analyst": {"allow": ["docs:read", "docs:delete"], "receive_from": ["scheduler"]},
        "helper": {"allow": ["docs:read"]},
    },
    "tiers": {
        "rules": [
            {"name": "deletes-wait", "tier": "supervised", "permissions": ["docs:delete"]},
            {
                "name": "hr-never",
                "tier": "forbidden",
                "permissions": [{"actions": ["delete"], "resources": ["docs:/hr/**"]}],
            },
        ]
    },
}
HR = [{"type": "docs", "actions": ["delete"], "locations": ["docs:/hr/pay.pdf"]}]
DELETE = [{"type": "docs", "actions": ["delete"], "locations": ["docs:/q3/report.pdf"]}]


def approvals_config(policy: dict[str, Any] | None = POLICY) -> dict[str, Any]:
    from delegation_support import TOKEN_EXCHANGE, delegation_config

    grants = ["client_credentials", TOKEN_EXCHANGE, CIBA]
    config = delegation_config(
        agent_overrides={
            "agent-a": {"profile": "scheduler", "grant_types": grants},
            "agent-b": {"profile": "analyst", "grant_types": grants},
            "agent-c": {"profile": "helper", "grant_types": grants},
        },
        grants=[{"subject": "*", "agents": ["agent-a", "agent-c"]}],
    )
    config["trusted_issuers"][0].update(
        {"roles_claim": "groups", "roles": {"admins": ["admin"], "staff": ["viewer"]}}
    )
    if policy is not None:
        config["policy"] = policy
    config["approvals"] = {"interval": 5, "request_lifetime": 600, "token_lifetime": 120}
    return config


def held_token(live: LiveServer, agent: str = "agent-a", groups: str = "admins") -> str:
    """The token ``agent`` holds, acting for alice (a first hop from her identity provider)."""
    response = exchange(live, agent, user_token(groups=[groups]), subject_type=JWT,
                        scope="docs:read")  # fmt: skip
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def ask(live: LiveServer, token: str, agent: str = "agent-a", **params: str) -> httpx.Response:
    form = {"scope": "openid docs:read", "login_hint_token": token,
            "authorization_details": json.dumps(DELETE), "binding_message": "Q3-42",
            **assertion(live, agent), **params}  # fmt: skip
    return live.client.post("/bc-authorize", data={k: v for k, v in form.items() if v})


def poll(
    live: LiveServer, auth_req_id: str, agent: str = "agent-a", key: str | None = None
) -> httpx.Response:
    return live.client.post(
        "/token",
        data={"grant_type": CIBA, "auth_req_id": auth_req_id, **assertion(live, agent)},
        headers={"DPoP": live.proof(DPOP_KEYS[key or agent])},
    )
