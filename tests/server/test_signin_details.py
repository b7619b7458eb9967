"""RFC 9396 ``authorization_details`` where a person signs in: asked for at ``/authorize``
(and ``/par``), decided for the person (and the agent) before the consent page shows them in
words, kept with the consent, the code and the refresh token, returned in every token
response (§7), narrowed — never widened — at the code (§6.1) and refresh (§6.2) requests, and
attenuated again by every exchange that follows.  Each rule is tried from the wire."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from delegation_support import (
    ACCESS_TOKEN,
    TOKEN_EXCHANGE,
    claims_of,
    introspect,
    own_token,
)
from signin_support import (
    AGENT_REDIRECT,
    WEB_KEY,
    WEB_SECRET,
    Browser,
    auth_params,
    obtain_code,
    pkce,
    query_of,
    redeem,
    refresh_grant,
    run_db,
    sign_in_and_get_tokens,
    start,
)

from deputize.server.accounts import actions as accounts
from deputize.server.storage import audit

from support import LiveServer, ServerFactory, assert_error

POLICY: dict[str, Any] = {
    "types": {
        "docs": {"actions": ["read", "write", "delete"]},
        "payment": {"actions": ["pay"], "resource_field": "creditors", "limits": ["max_amount"]},
    },
    "roles": {
        "viewer": {"permissions": ["docs:read", {"actions": ["pay"], "resources": ["payees:/**"]}]},
        "editor": {"extends": ["viewer"], "permissions": ["docs:write", "docs:delete"]},
    },
    "profiles": {
        "agent-d": {"allow": ["docs:*"]},
        "agent-c": {"allow": [{"actions": ["read"], "resources": ["docs:/q3/**"]}]},
    },
    "tiers": {
        "rules": [{"name": "deletes-wait", "tier": "supervised", "permissions": ["docs:delete"]}]
    },
}
INVALID = "invalid_authorization_details"


def docs(actions: list[str], where: list[str]) -> dict[str, Any]:
    return {"type": "docs", "actions": actions, "locations": where}


def text(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


Q3_RW = docs(["read", "write"], ["docs:/q3/**"])


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    live = start(server_factory, policy=POLICY)
    run_db(live, lambda conn: accounts.set_roles(conn, "alice", ("editor",), 1, by="t"))
    run_db(live, lambda conn: accounts.set_roles(conn, "bob", ("viewer",), 1, by="t"))
    return live


def test_an_app_gets_the_details_the_person_allowed_shown_in_words(
    server: LiveServer, browser: Browser
) -> None:
    payment = {"type": "payment", "actions": ["pay"], "creditors": ["payees:/acme"],
               "max_amount": 500}  # fmt: skip
    verifier, challenge = pkce()
    params = auth_params(challenge=challenge, authorization_details=text(Q3_RW, payment))
    first = browser.authorize(params)
    signed_in = browser.sign_in(next_=query_of(first.headers["location"])["next"])
    page = browser.get(signed_in.headers["location"])
    assert page.status_code == 200, page.headers.get("location")
    assert "read, write</strong> (docs) on" in page.text and "<code>docs:/q3/**</code>" in page.text
    assert "max amount at most 500" in page.text  # a limit, in words
    done = browser.consent(page)
    # The token request may leave details out: the access token carries what was allowed.
    response = redeem(server, query_of(done.headers["location"])["code"], verifier)
    assert response.status_code == 200, response.text
    tokens = response.json()
    expected = [Q3_RW, payment]
    assert tokens["authorization_details"] == expected  # RFC 9396 §7: in the response
    assert claims_of(tokens["access_token"])["authorization_details"] == expected
    assert introspect(server, tokens["access_token"])["authorization_details"] == expected
    account = browser.get("/account")
    assert "docs:/q3/**" in account.text and "payees:/acme" in account.text


def test_details_beyond_the_person_s_roles_are_refused_after_sign_in(
    server: LiveServer, browser: Browser
) -> None:
    params = auth_params(authorization_details=text(docs(["write"], ["docs:/q3/a.txt"])))
    result = obtain_code(browser, params, username="bob")  # bob is a viewer
    assert result["error"] == INVALID and "code" not in result
    assert "roles" in result["error_description"]
    entries = run_db(server, lambda conn: audit.query(conn, subject="bob", events=["decision"]))
    assert [e["details"]["endpoint"] for e in entries] == ["authorize"]
    assert entries[0]["reason"].startswith("deny: ") and "roles" in entries[0]["reason"]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[{", "not JSON"),
        ('{"type": "docs"}', "JSON array"),
        (text({"type": "mail", "actions": ["send"], "locations": ["mail:/x"]}), "unknown"),
        (text({**docs(["read"], ["docs:/q3/x"]), "extra": 1}), "no field"),
        (text(docs(["shred"], ["docs:/q3/x"])), "no action"),
        (text(docs(["read"], ["docs:/q3/../hr/x"])), "locations"),
        (text(docs(["read"], ["docs:/q3/%2e%2e/hr"])), "locations"),
        ("[" + ",".join([json.dumps(docs(["read"], ["docs:/a"]))] * 33) + "]", "1 to 32"),
        ("x" * 9000, "longer than"),
    ],
)
def test_a_malformed_request_is_refused_at_the_redirect_uri(
    server: LiveServer, browser: Browser, value: str, said: str
) -> None:
    response = browser.authorize(auth_params(authorization_details=value))
    assert response.status_code == 302
    result = query_of(response.headers["location"])
    assert result["error"] == INVALID and said in result["error_description"], result


def test_an_agent_signing_in_never_gets_a_supervised_action(
    server: LiveServer, browser: Browser
) -> None:
    params = auth_params("agent-d", redirect_uri=AGENT_REDIRECT, scope="docs:read",
                         authorization_details=text(docs(["delete"], ["docs:/q3/x"])))  # fmt: skip
    result = obtain_code(browser, params)
    assert result["error"] == INVALID
    assert "supervised" in result["error_description"]
    assert "tiers.deletes-wait" in result["error_description"]


def test_an_agent_signing_in_gets_details_within_its_profile(
    server: LiveServer, browser: Browser
) -> None:
    tokens = sign_in_and_get_tokens(server, browser, client_id="agent-d", scope="docs:read",
                                    authorization_details=text(Q3_RW))  # fmt: skip
    claims = claims_of(tokens["access_token"])
    assert claims["act"] == {"sub": "agent-d"} and claims["roles"] == ["editor"]
    assert claims["authorization_details"] == [Q3_RW] == tokens["authorization_details"]


def test_the_token_request_may_narrow_never_widen_and_a_refusal_does_not_spend_the_code(
    server: LiveServer, browser: Browser
) -> None:
    verifier, challenge = pkce()
    params = auth_params(challenge=challenge, authorization_details=text(Q3_RW))
    code = obtain_code(browser, params)["code"]
    wider = redeem(server, code, verifier, authorization_details=text(docs(["read"], ["docs:/**"])))
    assert_error(wider, 400, INVALID)
    more_actions = redeem(server, code, verifier,
                          authorization_details=text(docs(["delete"], ["docs:/q3/x"])))  # fmt: skip
    assert_error(more_actions, 400, INVALID)
    narrower = text(docs(["read"], ["docs:/q3/reports/*"]))
    response = redeem(server, code, verifier, authorization_details=narrower)
    assert response.status_code == 200, response.text  # the code survived both refusals
    body = response.json()
    assert body["authorization_details"] == [docs(["read"], ["docs:/q3/reports/*"])]
    # The refresh token keeps what the person allowed: a refresh may ask for all of it again,
    # or narrow it, but never more.
    refreshed = refresh_grant(server, body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["authorization_details"] == [Q3_RW]
    beyond = refresh_grant(server, refreshed.json()["refresh_token"],
                           authorization_details=text(docs(["write"], ["docs:/q4/x"])))  # fmt: skip
    assert_error(beyond, 400, INVALID)
    again = refresh_grant(server, refreshed.json()["refresh_token"],
                          authorization_details=text(docs(["write"], ["docs:/q3/x"])))  # fmt: skip
    assert again.status_code == 200, again.text  # the refusal did not rotate the token away
    assert claims_of(again.json()["access_token"])["authorization_details"] == [
        docs(["write"], ["docs:/q3/x"])
    ]


def test_details_at_the_token_request_need_details_at_the_authorization_request(
    server: LiveServer, browser: Browser
) -> None:
    verifier, challenge = pkce()
    code = obtain_code(browser, auth_params(challenge=challenge))["code"]
    response = redeem(server, code, verifier, authorization_details=text(Q3_RW))
    assert_error(response, 400, INVALID)
    assert "authorization request" in response.json()["error_description"]


def test_consent_covers_narrower_details_and_asks_again_for_wider(
    server: LiveServer, browser: Browser
) -> None:
    sign_in_and_get_tokens(server, browser, authorization_details=text(Q3_RW))
    narrower = browser.authorize(
        auth_params(authorization_details=text(docs(["read"], ["docs:/q3/a"])))
    )
    assert narrower.status_code == 302 and "code=" in narrower.headers["location"]
    wider = browser.authorize(
        auth_params(authorization_details=text(docs(["read"], ["docs:/q4/a"])))
    )
    assert wider.status_code == 200 and "docs:/q4/a" in wider.text  # the consent page
    # Allowing it adds to the consent: both are covered from then on.
    assert "code=" in browser.consent(wider).headers["location"]
    for where in ("docs:/q3/b", "docs:/q4/a"):
        again = browser.authorize(auth_params(authorization_details=text(docs(["read"], [where]))))
        assert again.status_code == 302 and "code=" in again.headers["location"], where


def test_a_delegate_agent_inherits_them_narrowed_by_its_profile(
    server: LiveServer, browser: Browser
) -> None:
    person_token = sign_in_and_get_tokens(server, browser, authorization_details=text(Q3_RW))[
        "access_token"
    ]

    def delegate(entry: dict[str, Any] | None) -> httpx.Response:
        """web-app hands alice's token to agent-c, its delegate (actor_token)."""
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": person_token,
                "subject_token_type": ACCESS_TOKEN, "actor_token_type": ACCESS_TOKEN,
                "actor_token": own_token(server, "agent-c")}  # fmt: skip
        if entry is not None:
            form["authorization_details"] = text(entry)
        return server.client.post(
            "/token", data=form,
            headers={"DPoP": server.proof(WEB_KEY, access_token=person_token),
                     **server.basic("web-app", WEB_SECRET)},
        )  # fmt: skip

    # Inherited whole, agent-c's profile (read on docs:/q3/** only) refuses the write.
    assert_error(delegate(None), 400, INVALID)
    narrowed = delegate(docs(["read"], ["docs:/q3/**"]))
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["authorization_details"] == [docs(["read"], ["docs:/q3/**"])]
    assert claims_of(narrowed.json()["access_token"])["act"]["sub"] == "agent-c"
    for widened in (docs(["read"], ["docs:/**"]), docs(["write"], ["docs:/q3/x"])):
        assert_error(delegate(widened), 400, INVALID)


def test_pushed_requests_carry_details(server: LiveServer, browser: Browser) -> None:
    verifier, challenge = pkce()
    params = auth_params(challenge=challenge, authorization_details=text(Q3_RW))
    pushed = server.client.post("/par", data=params, headers=server.basic("web-app", WEB_SECRET))
    assert pushed.status_code == 201, pushed.text
    result = obtain_code(
        browser,
        {"client_id": "web-app", "request_uri": pushed.json()["request_uri"],
         "redirect_uri": params["redirect_uri"]},
    )  # fmt: skip
    response = redeem(server, result["code"], verifier, dpop_key=WEB_KEY)
    assert response.status_code == 200, response.text
    assert response.json()["authorization_details"] == [Q3_RW]
    bad = server.client.post(
        "/par", data={**params, "authorization_details": "[1]"},
        headers=server.basic("web-app", WEB_SECRET),
    )  # fmt: skip
    assert_error(bad, 400, INVALID)


def test_without_a_policy_details_are_refused_never_ignored(
    server_factory: ServerFactory,
) -> None:
    live = start(server_factory)
    b = Browser(live)
    try:
        response = b.authorize(auth_params(authorization_details=text(Q3_RW)))
    finally:
        b.close()
    result = query_of(response.headers["location"])
    assert result["error"] == INVALID and "no delegation policy" in result["error_description"]
