"""The delegation policy at token exchange: every hop gets at most parent ∩ the person's roles
∩ the agent's profile, minus forbidden and supervised, subject to conditions.  Each rule is
tried from the wire, on a live server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from delegation_support import JWT, claims_of, exchange, introspect, user_token

from support import LiveServer, ServerFactory, assert_error

POLICY: dict[str, Any] = {
    "types": {"docs": {"actions": ["read", "write", "delete"]}},
    "roles": {
        "viewer": {"permissions": ["docs:read"]},
        "admin": {
            "extends": ["viewer"],
            "permissions": ["docs:write", "docs:delete", "mail:send"],
        },
    },
    "profiles": {
        "scheduler": {
            "allow": ["docs:*", "mail:send"],
            "deny": [{"actions": ["*"], "resources": ["docs:/hr/**"]}],
            "delegate_to": ["analyst"],
        },
        "analyst": {"allow": ["docs:read"], "receive_from": ["scheduler"]},
        "helper": {"allow": ["docs:*", "mail:send"]},
    },
    "tiers": {
        "rules": [
            {"name": "deletes-wait", "tier": "supervised", "permissions": ["docs:delete"]},
            {"name": "no-mail-by-agents", "tier": "forbidden", "permissions": ["mail:send"]},
        ]
    },
}
IDP_ROLES = {"roles_claim": "groups", "roles": {"admins": ["admin"], "staff": ["viewer"]}}


def details(*entries: tuple[list[str], list[str]]) -> str:
    return json.dumps(
        [{"type": "docs", "actions": actions, "locations": where} for actions, where in entries]
    )


def _start(server_factory: ServerFactory, policy: dict[str, Any] | None = POLICY) -> LiveServer:
    from delegation_support import delegation_config

    config = delegation_config(
        agent_overrides={
            "agent-a": {"profile": "scheduler"},
            "agent-b": {"profile": "analyst"},
            "agent-c": {"profile": "helper"},
            "agent-d": {"can_decide": True},
        },
        grants=[{"subject": "*", "agents": ["agent-a", "agent-c", "agent-d"]}],
    )
    config["trusted_issuers"][0].update(IDP_ROLES)
    if policy is not None:
        config["policy"] = policy
    return server_factory.start(config)


@pytest.fixture
def live(server_factory: ServerFactory) -> LiveServer:
    return _start(server_factory)


def first_hop(
    live: LiveServer, groups: list[str], agent: str = "agent-a", **params: Any
) -> httpx.Response:
    return exchange(live, agent, user_token(groups=groups), subject_type=JWT, **params)


def test_scopes_are_cut_to_roles_profile_and_tiers(live: LiveServer) -> None:
    response = first_hop(live, ["admins"], "agent-c")
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    # mail:send is forbidden for agents: left out, since it was not asked for.
    assert claims["scope"] == "docs:read docs:write"
    assert claims["roles"] == ["admin"]
    staff = claims_of(first_hop(live, ["staff"], "agent-c").json()["access_token"])
    assert staff["scope"] == "docs:read"
    nobody = first_hop(live, ["outsiders"], "agent-c").json()
    assert "scope" not in nobody  # no role of ours: nothing governed is granted


def test_a_scope_reaching_into_a_denied_resource_is_refused(live: LiveServer) -> None:
    # docs:read is read on docs:/**, which includes scheduler's denied docs:/hr/**: a token
    # carrying it would let scheduler read hr at any resource server.
    body = assert_error(first_hop(live, ["admins"], scope="docs:read"), 400, "invalid_scope")
    assert "profiles.scheduler.deny" in body["error_description"]
    assert "scope" not in first_hop(live, ["admins"]).json()


@pytest.mark.parametrize(
    ("groups", "scope", "said"),
    [
        (["admins"], "mail:send", "tiers.no-mail-by-agents"),
        (["staff"], "docs:write", "rule roles"),
        (["outsiders"], "docs:read", "rule roles"),
    ],
)
def test_asking_beyond_the_policy_is_invalid_scope(
    live: LiveServer, groups: list[str], scope: str, said: str
) -> None:
    body = assert_error(first_hop(live, groups, "agent-c", scope=scope), 400, "invalid_scope")
    assert said in body["error_description"]


def test_an_issuer_cannot_name_our_roles_itself(live: LiveServer) -> None:
    # "admin" is one of our role names, but only mapped values of the claim count.
    refused = first_hop(live, ["admin"], "agent-c", scope="docs:read")
    assert_error(refused, 400, "invalid_scope")


def test_an_agent_without_a_profile_gets_nothing_governed(live: LiveServer) -> None:
    response = first_hop(live, ["admins"], "agent-d", scope="docs:read")
    body = assert_error(response, 400, "invalid_scope")
    assert "has no profile" in body["error_description"]


def test_details_flow_down_and_only_narrow(live: LiveServer) -> None:
    ok = first_hop(
        live, ["admins"], authorization_details=details((["read", "write"], ["docs:/q3/**"]))
    )
    assert ok.status_code == 200, ok.text
    t1 = ok.json()["access_token"]
    assert claims_of(t1)["authorization_details"] == [
        {"type": "docs", "actions": ["read", "write"], "locations": ["docs:/q3/**"]}
    ]
    seen = introspect(live, t1)
    assert seen["authorization_details"] == claims_of(t1)["authorization_details"]
    # RFC 9396 §7: the token response says what was granted, too.
    assert ok.json()["authorization_details"] == claims_of(t1)["authorization_details"]
    # A hand-off to analyst: read on one file is inside; write is beyond analyst's profile.
    read = exchange(live, "agent-a", t1, audience="agent-b",
                    authorization_details=details((["read"], ["docs:/q3/a.txt"])))  # fmt: skip
    assert read.status_code == 200, read.text
    redeemed = exchange(live, "agent-b", read.json()["access_token"], ath=False)
    assert redeemed.status_code == 200, redeemed.text
    assert claims_of(redeemed.json()["access_token"])["authorization_details"][0]["locations"] == [
        "docs:/q3/a.txt"
    ]
    assert redeemed.json()["authorization_details"][0]["locations"] == ["docs:/q3/a.txt"]
    write = exchange(live, "agent-a", t1, audience="agent-b",
                     authorization_details=details((["write"], ["docs:/q3/a.txt"])))  # fmt: skip
    body = assert_error(write, 400, "invalid_authorization_details")
    assert "profiles.analyst.allow" in body["error_description"]
    # Inheriting the parent's details re-decides them for the new agent: write is beyond it.
    inherited = exchange(live, "agent-a", t1, audience="agent-b")
    assert_error(inherited, 400, "invalid_authorization_details")


@pytest.mark.parametrize(
    "asked",
    [
        details((["read"], ["docs:/**"])),  # wider than the parent's docs:/q3/**
        details((["delete"], ["docs:/q3/a"])),  # an action the parent lacks
        details((["read"], ["docs:/q3/../hr/pay"])),  # an escape
        details((["read"], ["docs:/q3/%2e%2e/hr/pay"])),
        details((["read"], ["DOCS:/q3/A", "docs:/q4/x"])),  # one of two outside
    ],
)
def test_widening_at_a_hop_is_refused(live: LiveServer, asked: str) -> None:
    parent = first_hop(
        live, ["admins"], authorization_details=details((["read", "write"], ["docs:/q3/**"]))
    )
    t1 = parent.json()["access_token"]
    widened = exchange(live, "agent-a", t1, authorization_details=asked)
    assert_error(widened, 400, "invalid_authorization_details")


@pytest.mark.parametrize(
    ("asked", "said"),
    [
        (details((["delete"], ["docs:/q3/a"])), "tier supervised"),
        (details((["read"], ["docs:/hr/pay"])), "profiles.scheduler.deny"),
        (details((["read"], ["docs:/**"])), "profiles.scheduler.deny"),  # reaches into hr
        (details((["read"], ["docs:/HR/pay"])), "profiles.scheduler.deny"),
    ],
)
def test_supervised_and_denied_details_are_never_minted(
    live: LiveServer, asked: str, said: str
) -> None:
    body = assert_error(first_hop(live, ["admins"], authorization_details=asked), 400,
                        "invalid_authorization_details")  # fmt: skip
    assert said in body["error_description"]


@pytest.mark.parametrize(
    "asked",
    [
        "not json",
        "{}",
        "[]",
        json.dumps([{"type": "payments", "actions": ["pay"], "locations": ["x:/a"]}]),
        json.dumps([{"type": "docs", "actions": ["read"], "locations": ["docs:/a"], "extra": 1}]),
        json.dumps([{"type": "docs", "actions": ["read"], "locations": ["docs:/a"]}] * 40),
        "[" * 5000,
    ],
)
def test_hostile_details_are_refused_cleanly(live: LiveServer, asked: str) -> None:
    assert_error(first_hop(live, ["admins"], authorization_details=asked), 400,
                 "invalid_authorization_details")  # fmt: skip


def test_without_a_policy_details_are_refused(server_factory: ServerFactory) -> None:
    plain = _start(server_factory, policy=None)
    asked = details((["read"], ["docs:/a"]))
    assert_error(first_hop(plain, ["admins"], authorization_details=asked), 400,
                 "invalid_authorization_details")  # fmt: skip


def _own(live: LiveServer, agent: str, **params: Any) -> httpx.Response:
    from delegation_support import DPOP_KEYS, assertion

    return live.client.post(
        "/token",
        data={"grant_type": "client_credentials", **assertion(live, agent), **params},
        headers={"DPoP": live.proof(DPOP_KEYS[agent])},
    )


def test_an_agent_acting_for_itself_is_bounded_by_its_profile(live: LiveServer) -> None:
    ok = _own(live, "agent-c", authorization_details=details((["read", "write"], ["docs:/a/**"])))
    assert ok.status_code == 200, ok.text
    claims = claims_of(ok.json()["access_token"])
    assert claims["authorization_details"][0]["actions"] == ["read", "write"]
    assert ok.json()["authorization_details"] == claims["authorization_details"]  # RFC 9396 §7
    assert "roles" not in claims  # nobody's roles: it acts for nobody
    supervised = _own(live, "agent-c", authorization_details=details((["delete"], ["docs:/a"])))
    body = assert_error(supervised, 400, "invalid_authorization_details")
    assert "tier supervised" in body["error_description"]
    forbidden = _own(live, "agent-c", scope="mail:send")
    assert_error(forbidden, 400, "invalid_scope")
    assert (
        claims_of(_own(live, "agent-c").json()["access_token"])["scope"] == "docs:read docs:write"
    )
    no_profile = _own(live, "agent-d", scope="docs:read")
    assert "has no profile" in assert_error(no_profile, 400, "invalid_scope")["error_description"]
    assert "scope" not in claims_of(_own(live, "agent-d").json()["access_token"])


# --- POST /decide ------------------------------------------------------------------------------


def _decide(live: LiveServer, asker: str = "agent-d", **form: str) -> httpx.Response:
    from delegation_support import assertion

    return live.client.post("/decide", data={**assertion(live, asker), **form})


def test_decide_answers_for_a_live_token(live: LiveServer) -> None:
    asked = details((["read", "write"], ["docs:/q3/**"]))
    token = first_hop(live, ["admins"], authorization_details=asked).json()["access_token"]
    read = _decide(live, token=token, action="read", resource="docs:/q3/a.txt")
    assert read.status_code == 200, read.text
    assert read.json()["decision"] == "allow"
    assert read.json()["policy"] and read.headers["cache-control"] == "no-store"
    outside = _decide(live, token=token, action="read", resource="docs:/q4/a.txt").json()
    assert (outside["decision"], outside["rule"]) == ("deny", "token")
    escape = _decide(live, token=token, action="read", resource="docs:/q3/../hr/x").json()
    assert escape["decision"] == "deny"
    forged = _decide(live, token=token[:-4] + "AAAA", action="read", resource="docs:/q3/a").json()
    assert (forged["decision"], forged["reason"]) == ("deny", "the token is not active")


def test_decide_answers_for_claims_and_names_the_tier(live: LiveServer) -> None:
    claims = {"sub": "alice", "client_id": "agent-a", "act": {"sub": "agent-a"},
              "roles": ["admin"], "scope": "docs:delete docs:read"}  # fmt: skip
    answer = _decide(live, claims=json.dumps(claims), action="delete", resource="docs:/x").json()
    assert (answer["decision"], answer["tier"], answer["rule"]) == (
        "supervised", "supervised", "tiers.deletes-wait",
    )  # fmt: skip
    hr = _decide(live, claims=json.dumps(claims), action="read", resource="docs:/hr/x").json()
    assert hr["rule"] == "profiles.scheduler.deny"  # agent-a answers to the scheduler profile


def test_every_decision_is_audited(live: LiveServer) -> None:
    import asyncio

    from deputize.server.storage import audit
    from deputize.server.storage.database import Database

    claims = {"sub": "alice", "client_id": "agent-c", "act": {"sub": "agent-c"},
              "roles": ["viewer"], "scope": "docs:read"}  # fmt: skip
    _decide(live, claims=json.dumps(claims), action="read", resource="docs:/a")

    async def entries() -> list[dict[str, Any]]:
        db = Database(live.settings.async_database_url)
        try:
            async with db.begin() as conn:
                return await audit.query(conn, events=["decision"])
        finally:
            await db.dispose()

    (entry,) = asyncio.run(entries())
    assert entry["client_id"] == "agent-d" and entry["subject"] == "alice"
    assert entry["details"]["rule"] == "tiers.default" and entry["details"]["policy"]


@pytest.mark.parametrize(
    ("asker", "form", "status", "error"),
    [
        ("agent-c", {"claims": "{}", "action": "read", "resource": "docs:/a"}, 400,
         "unauthorized_client"),
        ("agent-d", {"claims": "{}", "resource": "docs:/a"}, 400, "invalid_request"),
        ("agent-d", {"claims": "{}", "token": "x", "action": "a", "resource": "docs:/a"}, 400,
         "invalid_request"),
        ("agent-d", {"action": "a", "resource": "docs:/a"}, 400, "invalid_request"),
        ("agent-d", {"claims": "[", "action": "a", "resource": "docs:/a"}, 400, "invalid_request"),
        ("agent-d", {"claims": "[" * 5000, "action": "a", "resource": "x:/a"}, 400,
         "invalid_request"),
        ("agent-d", {"claims": "{}", "action": "a\x00", "resource": "docs:/a"}, 400,
         "invalid_request"),
        ("agent-d", {"claims": "{}", "action": "a", "resource": "d:/a", "details": "[]"}, 400,
         "invalid_request"),
    ],
)  # fmt: skip
def test_decide_refusals(
    live: LiveServer, asker: str, form: dict[str, str], status: int, error: str
) -> None:
    assert_error(_decide(live, asker, **form), status, error)


def test_decide_refuses_unauthenticated_callers(live: LiveServer) -> None:
    response = live.client.post("/decide", data={"claims": "{}", "action": "a", "resource": "x:/a"})
    assert_error(response, 401, "invalid_client")


def test_decide_without_a_policy(server_factory: ServerFactory) -> None:
    plain = _start(server_factory, policy=None)
    response = _decide(plain, claims="{}", action="read", resource="docs:/a")
    assert_error(response, 400, "invalid_request")


def test_metadata_names_the_declared_types(live: LiveServer, server_factory: ServerFactory) -> None:
    document = live.client.get("/.well-known/oauth-authorization-server").json()
    assert document["authorization_details_types_supported"] == ["docs"]
    plain = _start(server_factory, policy=None)
    bare = plain.client.get("/.well-known/oauth-authorization-server").json()
    assert "authorization_details_types_supported" not in bare
