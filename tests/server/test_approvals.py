"""Supervised actions wait for the person (OpenID CIBA Core 1.0, poll mode), from the wire.

alice (admin, through the identity provider's groups) lets scheduling-agent (agent-a) act for
her; deleting a document is supervised.  The agent asks at ``/bc-authorize`` with the token it
holds for her as ``login_hint_token``; alice approves on her account page (or an operator with
``deputize approvals``); the agent's poll then yields one token for exactly that deletion,
bound to its key, carrying the chain and the approval.  Every way around it is tried.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from approval_support import DELETE, HR, approvals_config, ask, held_token, poll
from delegation_support import DPOP_KEYS, claims_of, exchange
from signin_support import Browser, add_user, hidden_fields, run_db

from deputize.keys.jwk import thumbprint
from deputize.server.cli import main as cli_main
from deputize.server.settings import CIBA
from deputize.server.storage import audit

from support import LiveServer, ServerFactory, assert_error, write_config


@pytest.fixture
def live(server_factory: ServerFactory) -> LiveServer:
    server = server_factory.start(approvals_config())
    add_user(server, "alice")
    add_user(server, "bob")
    return server


def approve_in_browser(live: LiveServer, decision: str = "approve", user: str = "alice") -> str:
    """Sign in as ``user``, read the account page, answer the first request; the page text."""
    browser = Browser(live)
    try:
        assert browser.sign_in(user).status_code == 303
        page = browser.get("/account")
        assert page.status_code == 200
        if 'name="approval"' not in page.text:
            return page.text
        fields = hidden_fields(page.text.split('id="approvals"', 1)[1])
        done = browser.post_form(
            "/account/approvals",
            {"csrf": fields["csrf"][0], "approval": fields["approval"][0], "decision": decision},
        )
        assert done.status_code == 303, done.text
        return page.text
    finally:
        browser.close()


def test_metadata_advertises_poll_mode(live: LiveServer) -> None:
    meta = live.client.get("/.well-known/openid-configuration").json()
    assert meta["backchannel_authentication_endpoint"].endswith("/bc-authorize")
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert meta["backchannel_user_code_parameter_supported"] is False
    assert CIBA in meta["grant_types_supported"]


def test_a_supervised_action_waits_for_the_person_then_yields_one_bound_token(
    live: LiveServer,
) -> None:
    parent = held_token(live)
    asked = ask(live, parent)
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert body["expires_in"] == 600 and body["interval"] == 5
    auth_req_id = body["auth_req_id"]
    assert_error(poll(live, auth_req_id), 400, "authorization_pending")
    assert_error(poll(live, auth_req_id), 400, "slow_down")  # faster than the interval
    # Another agent cannot redeem it, even with the right id.
    assert_error(poll(live, auth_req_id, "agent-c"), 400, "invalid_grant")
    page = approve_in_browser(live)
    assert "agent-a, acting for you" in page and "delete docs:/q3/report.pdf" in page
    assert "Q3-42" in page  # the binding message, to compare with what the agent shows
    # The token goes only to the key that asked.
    assert_error(poll(live, auth_req_id, key="agent-c"), 400, "invalid_request")
    granted = poll(live, auth_req_id)
    assert granted.status_code == 200, granted.text
    tokens = granted.json()
    claims = claims_of(tokens["access_token"])
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "agent-a"}
    assert claims["authorization_details"] == DELETE == tokens["authorization_details"]
    assert claims["cnf"]["jkt"] == thumbprint(DPOP_KEYS["agent-a"].public_jwk())
    assert claims["approval"]["by"] == "alice" and claims["approval"]["at"] > 0
    assert claims["exp"] - claims["iat"] <= 120 and tokens["token_type"] == "DPoP"
    assert claims_of(tokens["id_token"])["sub"] == "alice"
    assert_error(poll(live, auth_req_id), 400, "invalid_grant")  # one token per approval
    events = [e["event"] for e in run_db(live, lambda c: audit.query(c, subject="alice"))]
    assert "approval_requested" in events and "approval_granted" in events


def test_a_sub_agent_asks_mid_chain_and_the_person_sees_the_whole_chain(
    live: LiveServer,
) -> None:
    from delegation_support import ACCESS_TOKEN, own_token

    parent = held_token(live)
    handed = exchange(live, "agent-a", parent, actor_token=own_token(live, "agent-b"),
                      actor_token_type=ACCESS_TOKEN, scope="docs:read")  # fmt: skip
    assert handed.status_code == 200, handed.text
    sub_token = handed.json()["access_token"]
    auth_req_id = ask(live, sub_token, "agent-b").json()["auth_req_id"]
    page = approve_in_browser(live)
    assert "agent-b, acting for agent-a, acting for you</strong>, wants to" in page
    granted = poll(live, auth_req_id, "agent-b")
    assert granted.status_code == 200, granted.text
    claims = claims_of(granted.json()["access_token"])
    assert claims["act"] == {"sub": "agent-b", "act": {"sub": "agent-a"}}
    assert claims["authorization_details"] == DELETE


def test_a_denial_is_access_denied(live: LiveServer) -> None:
    auth_req_id = ask(live, held_token(live)).json()["auth_req_id"]
    approve_in_browser(live, "deny")
    assert_error(poll(live, auth_req_id), 400, "access_denied")


def test_nobody_else_sees_or_answers_it(live: LiveServer) -> None:
    ask(live, held_token(live)).raise_for_status()
    page = approve_in_browser(live, user="bob")  # bob has no approver role
    assert 'id="no-approvals"' in page and "report.pdf" not in page


def test_an_unanswered_request_expires(live: LiveServer) -> None:
    auth_req_id = ask(live, held_token(live), requested_expiry="60").json()["auth_req_id"]
    live.clock.offset += 61
    try:
        assert_error(poll(live, auth_req_id), 400, "expired_token")
    finally:
        live.clock.offset -= 61
    events = [e["event"] for e in run_db(live, lambda c: audit.query(c, subject="alice"))]
    assert "approval_expired" in events


def _config_file(live: LiveServer, tmp_path: Path) -> str:
    return str(write_config(tmp_path / "deputize.yaml", live.settings.database_url))


def test_revoking_the_parent_stops_the_approved_token(live: LiveServer, tmp_path: Path) -> None:
    parent = held_token(live)
    auth_req_id = ask(live, parent).json()["auth_req_id"]
    approve_in_browser(live)
    jti = claims_of(parent)["jti"]
    assert cli_main(["revoke", "--config", _config_file(live, tmp_path), "--jti", jti]) == 0
    assert_error(poll(live, auth_req_id), 400, "invalid_grant")


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        # A deletion in hr is forbidden for agents: nobody is asked to approve it.
        ({"authorization_details": json.dumps(HR)}, 400, "invalid_authorization_details"),
        ({"scope": "docs:read"}, 400, "invalid_request"),  # CIBA §7.1: openid is required
        ({"login_hint_token": "", "login_hint": "alice"}, 400, "invalid_request"),
        ({"login_hint": "alice"}, 400, "invalid_request"),  # two hints
        ({"login_hint_token": "not-a-token"}, 400, "invalid_request"),
        ({"authorization_details": ""}, 400, "invalid_request"),
        ({"authorization_details": "[{"}, 400, "invalid_authorization_details"),
        ({"scope": "openid mail:send"}, 400, "invalid_scope"),
        ({"binding_message": "x" * 129}, 400, "invalid_binding_message"),
        ({"requested_expiry": "-5"}, 400, "invalid_request"),
    ],
)
def test_refusals(live: LiveServer, params: dict[str, str], status: int, error: str) -> None:
    assert_error(ask(live, held_token(live), **params), status, error)


def test_the_hint_must_be_the_asking_agent_s_own_token(live: LiveServer) -> None:
    other = held_token(live, "agent-c")
    refused = ask(live, other, "agent-a")
    assert "login_hint_token" in assert_error(refused, 400, "invalid_request")["error_description"]


def test_a_person_without_the_role_cannot_be_asked_for_it(live: LiveServer) -> None:
    body = assert_error(ask(live, held_token(live, groups="staff")), 400,
                        "invalid_authorization_details")  # fmt: skip
    assert "roles" in body["error_description"]


def test_an_operator_answers_from_the_command_line(
    live: LiveServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    auth_req_id = ask(live, held_token(live)).json()["auth_req_id"]
    config = _config_file(live, tmp_path)
    assert cli_main(["approvals", "list", "--config", config]) == 0
    listed = capsys.readouterr().out
    assert "agent-a, acting for alice, wants to delete docs:/q3/report.pdf" in listed
    request_id = listed.split()[0]
    assert cli_main(["approvals", "approve", request_id, "--config", config, "--by", "ops"]) == 0
    assert cli_main(["approvals", "deny", request_id, "--config", config]) == 1  # answered
    granted = poll(live, auth_req_id)
    assert granted.status_code == 200, granted.text
    assert claims_of(granted.json()["access_token"])["approval"]["by"] == "ops"


def test_without_a_policy_there_is_no_ciba(server_factory: ServerFactory) -> None:
    live = server_factory.start(approvals_config(policy=None))
    meta = live.client.get("/.well-known/openid-configuration").json()
    assert "backchannel_authentication_endpoint" not in meta
    assert CIBA not in meta["grant_types_supported"]
