"""Tokens from sign-in: refresh rotation, ID tokens, UserInfo, sign-out, and consent as the
person's authorisation of agents (delegation rule 4), withdrawn from the account page."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest
from delegation_support import (
    ACCESS_TOKEN,
    DPOP_KEYS,
    assertion,
    claims_of,
    exchange,
    introspect,
    own_token,
)
from signin_support import (
    AGENT_REDIRECT,
    WEB_KEY,
    WEB_SECRET,
    Browser,
    auth_params,
    hidden_fields,
    obtain_code,
    pkce,
    refresh_grant,
    run_db,
    sign_in_and_get_tokens,
    start,
)

from deputize.keys import KeySet, create_proof, parse, sign
from deputize.server.storage import consents

from support import LiveServer, ServerFactory, assert_error


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


# --- refresh tokens -----------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(server: LiveServer, browser: Browser) -> None:
    first = sign_in_and_get_tokens(server, browser)
    second = refresh_grant(server, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert claims_of(rotated["access_token"])["sub"] == "alice"
    # The old refresh token again: someone else holds a copy.  Everything of the family dies.
    assert_error(refresh_grant(server, first["refresh_token"]), 400, "invalid_grant")
    assert_error(refresh_grant(server, rotated["refresh_token"]), 400, "invalid_grant")
    assert introspect(server, first["access_token"])["active"] is False
    assert introspect(server, rotated["access_token"])["active"] is False


def test_refresh_never_widens_scope(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser, scope="openid docs:read")
    assert_error(refresh_grant(server, tokens["refresh_token"], scope="docs:write"), 400,
                 "invalid_scope")  # fmt: skip
    narrowed = refresh_grant(server, tokens["refresh_token"], scope="docs:read")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "docs:read"
    assert "id_token" not in narrowed.json()


def test_refresh_token_belongs_to_its_client(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    response = refresh_grant(server, tokens["refresh_token"], client_id="spa")
    assert_error(response, 400, "invalid_grant")


def test_refresh_token_expires(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    server.clock.offset = server.settings.refresh_token_lifetime + 1
    assert_error(refresh_grant(server, tokens["refresh_token"]), 400, "invalid_grant")


def test_agent_exchange_hops_get_no_refresh_token(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    response = hand_to_agent(server, tokens["access_token"], "agent-c")
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()


# --- OpenID Connect -----------------------------------------------------------------------------


def jwks(server: LiveServer) -> KeySet:
    return KeySet.from_jwks(server.client.get("/jwks").json())


def test_id_token_is_signed_with_the_published_keys(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    parsed = parse(tokens["id_token"], algorithms=("ES256",), typ="JWT")
    key = jwks(server).find(parsed)
    assert key is not None
    claims = parsed.verify(key)
    assert claims["iss"] == server.url and claims["sub"] == "alice"
    assert claims["aud"] == "web-app" and claims["nonce"] == tokens["_params"]["nonce"]
    assert claims["exp"] - claims["iat"] == server.settings.id_token_lifetime
    assert isinstance(claims["auth_time"], int) and "email" not in claims
    assert claims["amr"] == ["pwd"] and claims["azp"] == "web-app"
    assert parsed.header["typ"] == "JWT" and parsed.header["kid"] == key.thumbprint


def userinfo(server: LiveServer, token: str, *, scheme: str = "DPoP", key: Any = WEB_KEY,
             proof: str | None = None) -> Any:  # fmt: skip
    headers = {"Authorization": f"{scheme} {token}"}
    if key is not None:
        headers["DPoP"] = proof or create_proof(
            key, "GET", server.url + "/userinfo", access_token=token, now=server.clock()
        )
    return server.client.get("/userinfo", headers=headers)


def test_userinfo_answers_a_dpop_bound_token_with_its_proof(
    server: LiveServer, browser: Browser
) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    response = userinfo(server, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "sub": "alice",
        "preferred_username": "alice",
        "name": "Alice Example",
        "email": "alice@example.com",
    }


def test_userinfo_claims_follow_scopes(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser, scope="openid docs:read")
    assert userinfo(server, tokens["access_token"]).json() == {"sub": "alice"}


@pytest.mark.parametrize(
    ("how", "status", "error"),
    [
        ("as bearer", 401, "invalid_token"),
        ("without a proof", 401, "invalid_dpop_proof"),
        ("with another key", 401, "invalid_dpop_proof"),
        ("with a replayed proof", 401, "invalid_dpop_proof"),
        ("revoked", 401, "invalid_token"),
        ("garbage", 401, "invalid_token"),
    ],
)
def test_userinfo_refuses(
    server: LiveServer, browser: Browser, how: str, status: int, error: str
) -> None:
    token = sign_in_and_get_tokens(server, browser)["access_token"]
    if how == "as bearer":
        response = userinfo(server, token, scheme="Bearer", key=None)
    elif how == "without a proof":
        response = userinfo(server, token, key=None)
    elif how == "with another key":
        response = userinfo(server, token, key=DPOP_KEYS["agent-a"])
    elif how == "with a replayed proof":
        proof = create_proof(WEB_KEY, "GET", server.url + "/userinfo", access_token=token)
        assert userinfo(server, token, proof=proof).status_code == 200
        response = userinfo(server, token, proof=proof)
    elif how == "revoked":
        server.client.post("/revoke", data={"token": token},
                           headers=server.basic("web-app", WEB_SECRET))  # fmt: skip
        response = userinfo(server, token)
    else:
        response = userinfo(server, token + "x")
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert "www-authenticate" in response.headers


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "alg", ["A" * 41, "\u20ac", 'a"b', "a\\b"],
    ids=["long (cut with an ellipsis)", "not Latin-1", "a quote", "a backslash"],
)  # fmt: skip
def test_userinfo_challenge_stays_well_formed_whatever_the_proof_says(
    server: LiveServer, browser: Browser, alg: str
) -> None:
    """The refusal quotes the proof's ``alg``; in the challenge a ``"`` ended the quoted-string
    early, and a character Latin-1 cannot hold made the response itself fail (a 500)."""
    token = sign_in_and_get_tokens(server, browser)["access_token"]
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": WEB_KEY.public_jwk()}
    claims = {"jti": "j", "htm": "GET", "htu": server.url + "/userinfo", "iat": server.clock()}
    proof = f"{_segment(header)}.{_segment(claims)}.AAAA"
    response = userinfo(server, token, proof=proof)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_dpop_proof"
    challenge = response.headers["www-authenticate"]
    assert re.fullmatch(
        r'DPoP error="invalid_dpop_proof", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*", '
        r'algs="[A-Za-z0-9 ]+"',
        challenge,
    ), challenge
    assert response.json()["error_description"] in challenge


def test_userinfo_never_reads_a_malformed_binding_as_bearer(
    server: LiveServer, browser: Browser
) -> None:
    """A token of ours whose ``cnf`` names no key thumbprint (another confirmation method)
    is refused, not served as a bearer token (``keys.dpop.bound_key``).  Deputize never mints
    one; this one is signed with the server's own key to stand for a token it cannot read."""
    token = sign_in_and_get_tokens(server, browser)["access_token"]
    claims = dict(parse(token, algorithms=("ES256",), typ="at+jwt").claims)
    app: Any = server.server.config.app
    odd = sign(
        claims | {"cnf": {"x5t#S256": "abc"}}, app.state.ctx.keyring.view.active, typ="at+jwt"
    )
    response = userinfo(server, odd, scheme="Bearer", key=None)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"


def test_userinfo_needs_the_openid_scope(server: LiveServer, browser: Browser) -> None:
    token = sign_in_and_get_tokens(server, browser, scope="docs:read")["access_token"]
    response = userinfo(server, token)
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"


def test_rp_initiated_logout_redirects_only_to_registered_uris(
    server: LiveServer, browser: Browser
) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    params = {"id_token_hint": tokens["id_token"], "state": "s1",
              "post_logout_redirect_uri": "http://127.0.0.1:9/bye"}  # fmt: skip
    page = browser.get("/logout", params=params)
    assert page.status_code == 200 and "Sign out of Deputize?" in page.text
    fields = {k: v[0] for k, v in hidden_fields(page.text).items()}
    out = browser.post_form("/logout", fields)
    assert out.status_code == 303
    assert out.headers["location"] == "http://127.0.0.1:9/bye?state=s1"
    assert browser.get("/account").status_code == 302  # signed out
    evil = browser.get("/logout", params={**params, "post_logout_redirect_uri": "https://evil"})
    assert evil.status_code == 400 and "location" not in evil.headers


# --- consent authorises agents (delegation rule 4) ----------------------------------------------


def hand_to_agent(server: LiveServer, user_token: str, agent: str) -> Any:
    """The web app delegates its user's token to ``agent`` in one call (actor_token)."""
    proof = server.proof(WEB_KEY, access_token=user_token)
    return server.client.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": user_token,
            "subject_token_type": ACCESS_TOKEN,
            "actor_token": own_token(server, agent),
            "actor_token_type": ACCESS_TOKEN,
        },
        headers={"DPoP": proof, **server.basic("web-app", WEB_SECRET)},
    )


def test_consented_agent_may_act_and_others_may_not(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser, scope="openid docs:read mail:send")
    response = hand_to_agent(server, tokens["access_token"], "agent-c")
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "agent-c"}
    assert claims["cnf"]["jkt"] == DPOP_KEYS["agent-c"].public.thumbprint
    assert set(claims["scope"].split()) == {"docs:read", "mail:send"}
    # agent-b was never named on the consent page: alice did not authorise it.
    refused = hand_to_agent(server, tokens["access_token"], "agent-b")
    assert_error(refused, 400, "invalid_request")


def test_handoff_of_a_person_token_needs_consent_too(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    proof = server.proof(WEB_KEY, access_token=tokens["access_token"])
    response = server.client.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": tokens["access_token"],
            "subject_token_type": ACCESS_TOKEN,
            "audience": "agent-b",
        },
        headers={"DPoP": proof, **server.basic("web-app", WEB_SECRET)},
    )
    assert_error(response, 400, "invalid_request")


def withdraw_on_account_page(browser: Browser, client_name: str) -> None:
    page = browser.get("/account")
    assert page.status_code == 200 and client_name in page.text
    fields = hidden_fields(page.text)
    response = browser.post_form(
        "/account/consents/revoke", {"csrf": fields["csrf"][0], "consent": fields["consent"][0]}
    )
    assert response.status_code == 303, response.text
    assert "Access withdrawn" in browser.get(response.headers["location"]).text


def test_withdrawing_consent_stops_exchanges_and_revokes_live_tokens(
    server: LiveServer, browser: Browser
) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    delegated = hand_to_agent(server, tokens["access_token"], "agent-c").json()["access_token"]
    # agent-c hands a piece on to agent-a: revocation must reach it too.
    onward = exchange(server, "agent-c", delegated, actor_token=own_token(server, "agent-a"),
                      actor_token_type=ACCESS_TOKEN)  # fmt: skip
    assert onward.status_code == 200, onward.text
    withdraw_on_account_page(browser, "Example Docs")
    for token in (tokens["access_token"], delegated, onward.json()["access_token"]):
        assert introspect(server, token)["active"] is False
    assert_error(refresh_grant(server, tokens["refresh_token"]), 400, "invalid_grant")
    # Signing in again without consenting gives no code, and the agent cannot start again.
    again = obtain_code(browser, auth_params(prompt="none"))
    assert again["error"] == "consent_required"
    live = run_db(server, lambda conn: consents.list_all(conn, sub="alice"))
    assert live == []


def test_admin_revocation_from_the_cli(
    server: LiveServer, browser: Browser, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from deputize.server.cli import main

    tokens = sign_in_and_get_tokens(server, browser)
    (consent,) = run_db(server, lambda conn: consents.list_all(conn, sub="alice"))
    config = tmp_path / "deputize.yaml"
    database = {"url": server.settings.database_url}
    config.write_text(yaml.safe_dump({"issuer": server.url, "database": database}))
    assert main(["consents", "list", "-c", str(config)]) == 0
    assert consent.id in capsys.readouterr().out
    assert main(["consents", "revoke", "-c", str(config), consent.id]) == 0
    assert introspect(server, tokens["access_token"])["active"] is False
    assert_error(hand_to_agent(server, tokens["access_token"], "agent-c"), 400, "invalid_request")


def test_an_agent_signing_users_in_acts_for_them(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser, client_id="agent-d", scope="openid docs:read",
                                    dpop_key=DPOP_KEYS["agent-d"])  # fmt: skip
    claims = claims_of(tokens["access_token"])
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "agent-d"}
    assert "refresh_token" not in tokens  # agent-d is not allowed the refresh grant
    # The consent names agent-d itself; withdrawing it revokes agent-d's token.
    withdraw_on_account_page(browser, "Travel Agent")
    assert introspect(server, tokens["access_token"])["active"] is False


def test_revoking_a_refresh_token_revokes_its_family(server: LiveServer, browser: Browser) -> None:
    tokens = sign_in_and_get_tokens(server, browser)
    other = server.client.post("/revoke", data={"token": tokens["refresh_token"]},
                               headers=server.basic("svc-basic"))  # fmt: skip
    assert_error(other, 400, "unauthorized_client")
    response = server.client.post("/revoke", data={"token": tokens["refresh_token"]},
                                  headers=server.basic("web-app", WEB_SECRET))  # fmt: skip
    assert response.status_code == 200
    assert_error(refresh_grant(server, tokens["refresh_token"]), 400, "invalid_grant")
    assert introspect(server, tokens["access_token"])["active"] is False


def test_an_agent_limited_to_no_delegation_cannot_act_for_a_signed_in_user(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory, agent_d={"max_delegation_depth": 0})
    browser = Browser(server)
    try:
        verifier, challenge = pkce()
        params = auth_params("agent-d", redirect_uri=AGENT_REDIRECT, scope="openid",
                             challenge=challenge)  # fmt: skip
        code = obtain_code(browser, params)["code"]
    finally:
        browser.close()
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": AGENT_REDIRECT, **assertion(server, "agent-d")}  # fmt: skip
    response = server.client.post(
        "/token", data=form, headers={"DPoP": server.proof(DPOP_KEYS["agent-d"])}
    )
    assert_error(response, 400, "invalid_grant")


def test_withdrawal_racing_exchanges_leaves_nothing_live(
    server: LiveServer, browser: Browser
) -> None:
    """Exchanges relying on a consent and its withdrawal, all at once: every exchange either
    fails or its token is revoked with the rest."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from deputize.server.accounts import actions as accounts
    from deputize.server.storage.tables import issued_tokens

    tokens = sign_in_and_get_tokens(server, browser)
    user_token = tokens["access_token"]
    (consent,) = run_db(server, lambda conn: consents.list_all(conn, sub="alice"))
    prepared = []
    for _ in range(8):
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": user_token,
            "subject_token_type": ACCESS_TOKEN,
            "actor_token": own_token(server, "agent-c"),
            "actor_token_type": ACCESS_TOKEN,
        }
        headers = {"DPoP": server.proof(WEB_KEY, access_token=user_token),
                   **server.basic("web-app", WEB_SECRET)}  # fmt: skip
        prepared.append((form, headers))
    barrier = threading.Barrier(len(prepared) + 1, timeout=30)

    def send(request: tuple[dict[str, str], dict[str, str]]) -> Any:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            barrier.wait()
            return client.post("/token", data=request[0], headers=request[1])

    def withdraw() -> Any:
        barrier.wait()
        return run_db(
            server,
            lambda conn: accounts.revoke_consent(conn, consent.id, int(server.clock()), by="test"),
        )

    with ThreadPoolExecutor(max_workers=len(prepared) + 1) as pool:
        withdrawal = pool.submit(withdraw)
        responses = list(pool.map(send, prepared))
        assert withdrawal.result() is not None
    minted = []
    for response in responses:
        if response.status_code == 200:
            minted.append(response.json()["access_token"])
        else:
            assert response.json()["error"] == "invalid_request", response.text
    for token in (user_token, *minted):
        assert introspect(server, token)["active"] is False

    async def live_rows(conn: Any) -> list[Any]:
        from sqlalchemy import select

        rows = await conn.execute(
            select(issued_tokens.c.jti).where(
                issued_tokens.c.subject == "alice",
                issued_tokens.c.client_id.in_(["web-app", "agent-c"]),
                issued_tokens.c.revoked_at.is_(None),
            )
        )
        return list(rows)

    assert run_db(server, live_rows) == []
    assert_error(hand_to_agent(server, user_token, "agent-c"), 400, "invalid_request")
