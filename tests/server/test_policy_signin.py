"""The delegation policy where a person signs in: an agent that signs a person in (code flow)
is cut to the person's roles and its profile, and its token carries the roles for the next
hops; ``authorization_details`` of a type the policy does not declare are refused at sign-in,
never ignored (tests/server/test_signin_details.py has the rest)."""

from __future__ import annotations

from typing import Any

import pytest
from delegation_support import claims_of, exchange
from signin_support import (
    WEB_KEY,
    Browser,
    auth_params,
    run_db,
    sign_in_and_get_tokens,
    start,
)

from deputize.server.accounts import actions as accounts

from support import LiveServer, ServerFactory

POLICY: dict[str, Any] = {
    "roles": {
        "viewer": {"permissions": ["docs:read"]},
        "editor": {"extends": ["viewer"], "permissions": ["docs:write"]},
    },
    "profiles": {
        "agent-d": {"allow": ["docs:*"], "delegate_to": ["agent-b"]},
        "agent-b": {"allow": ["docs:read"], "receive_from": ["agent-d"]},
    },
}


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    live = start(server_factory, policy=POLICY)
    changed = run_db(live, lambda conn: accounts.set_roles(conn, "alice", ("viewer",), 1, by="t"))
    assert changed == 0  # nothing was revoked: alice had no token yet
    return live


def test_an_agent_signing_a_person_in_gets_what_their_roles_allow(
    server: LiveServer, browser: Browser
) -> None:
    tokens = sign_in_and_get_tokens(
        server, browser, client_id="agent-d", scope="docs:read docs:write"
    )
    claims = claims_of(tokens["access_token"])
    assert claims["scope"] == "docs:read"  # docs:write: no role of alice's grants it
    assert claims["roles"] == ["viewer"] and claims["act"] == {"sub": "agent-d"}
    # The roles travel with the token: the next hop is decided on them.
    handoff = exchange(server, "agent-d", tokens["access_token"], audience="agent-b",
                       scope="docs:read", dpop_key=WEB_KEY)  # fmt: skip
    assert handoff.status_code == 200, handoff.text
    refused = exchange(server, "agent-d", tokens["access_token"], audience="agent-b",
                       scope="docs:write", dpop_key=WEB_KEY)  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"


def test_an_app_is_not_the_policy_s_business(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser, scope="openid docs:read docs:write")
    claims = claims_of(tokens["access_token"])
    assert claims["scope"] == "openid docs:read docs:write" and "roles" not in claims


def test_undeclared_authorization_details_are_refused_at_sign_in(
    server: LiveServer, browser: Browser
) -> None:
    params = auth_params(authorization_details='[{"type": "docs"}]')
    response = browser.authorize(params)
    assert response.status_code in (302, 303)
    assert "error=invalid_authorization_details" in response.headers["location"]


def test_a_forbidden_permission_never_reaches_an_agent_at_sign_in(
    server_factory: ServerFactory,
) -> None:
    rule = {"name": "no-writes-by-agents", "tier": "forbidden", "permissions": ["docs:write"]}
    policy = {**POLICY, "tiers": {"rules": [rule]}}
    live = start(server_factory, policy=policy)
    run_db(live, lambda conn: accounts.set_roles(conn, "alice", ("editor",), 1, by="t"))
    b = Browser(live)
    try:
        tokens = sign_in_and_get_tokens(live, b, client_id="agent-d", scope="docs:read docs:write")
    finally:
        b.close()
    assert claims_of(tokens["access_token"])["scope"] == "docs:read"  # editor, but forbidden
