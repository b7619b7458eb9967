"""/authorize, the sign-in page and the code at the token endpoint: every rule, tried to break.

Each test speaks HTTP to a live server with a cookie-keeping client (``signin_support.Browser``).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx
import pytest
from delegation_support import claims_of, introspect
from signin_support import (
    PASSWORD,
    SPA_KEY,
    SPA_REDIRECT,
    WEB_KEY,
    WEB_REDIRECT,
    Browser,
    auth_params,
    hidden_fields,
    obtain_code,
    pkce,
    query_of,
    redeem,
    refresh_grant,
    start,
)

from support import LiveServer, ServerFactory, assert_error


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


def assert_page(response: httpx.Response, status: int, text: str) -> None:
    """An HTML error page: the status, the message, and no redirect anywhere."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert text in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def redirected_error(response: httpx.Response, params: dict[str, str], error: str) -> None:
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(params["redirect_uri"] + "?")
    query = query_of(location)
    assert query["error"] == error, query
    assert query["state"] == params["state"]
    assert (
        query["iss"] == response.request.url.scheme + "://" + response.request.url.netloc.decode()
    )


# --- step 1: never redirect to an unregistered URI ---------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"redirect_uri": "http://127.0.0.1:9/evil"}, "has not registered"),
        ({"redirect_uri": WEB_REDIRECT + "/"}, "has not registered"),
        ({"redirect_uri": WEB_REDIRECT.upper()}, "has not registered"),
        ({"redirect_uri": WEB_REDIRECT + "?x=1"}, "has not registered"),
        ({"redirect_uri": ""}, "has not registered"),
        ({"client_id": "nobody"}, "not registered to sign users in"),
        ({"client_id": "svc-basic"}, "not registered to sign users in"),
        ({"client_id": ""}, "did not say who it is"),
        ({"client_id": "spa"}, "has not registered"),
    ],
    ids=[
        "shows a foreign redirect_uri on a page",
        "matches redirect_uri exactly, no trailing slash",
        "matches redirect_uri exactly, case-sensitively",
        "matches redirect_uri exactly, no added query",
        "refuses a missing redirect_uri",
        "refuses an unknown client",
        "refuses a client without the code grant",
        "refuses a missing client_id",
        "refuses another client's redirect_uri",
    ],
)
def test_unregistered_redirects_are_never_followed(
    browser: Browser, change: dict[str, str], message: str
) -> None:
    response = browser.authorize({**auth_params(), **change})
    assert_page(response, 400, message)


@pytest.mark.parametrize(
    "query",
    [
        "client_id=" + "x" * 5000,
        "client_id=web-app&redirect_uri=" + "y" * 5000,
        "client_id=web%00app&redirect_uri=x",
        "client_id=%FF%FE&redirect_uri=%FF",
        "",
    ],
    ids=["a huge client_id", "a huge redirect_uri", "a NUL byte", "bytes that are not UTF-8",
         "no parameters at all"],
)  # fmt: skip
def test_hostile_requests_get_a_page_not_a_crash(browser: Browser, query: str) -> None:
    response = browser.get("/authorize?" + query)
    assert_page(response, 400, "Sign-in request refused")


@pytest.mark.parametrize(
    "url",
    [
        "/login?next=authorize%3Fclient_id%3Dweb%2500app",
        "/logout?client_id=web%00app&post_logout_redirect_uri=x",
        "/authorize?client_id=web-app&redirect_uri=" + WEB_REDIRECT + "&state=a%00b",
    ],
    ids=["a NUL byte in sign-in's next", "a NUL byte at sign-out", "a NUL byte in state"],
)
def test_nul_bytes_never_reach_the_database(browser: Browser, url: str) -> None:
    response = browser.get(url)
    assert response.status_code in (200, 400), response.text
    assert response.headers["content-type"].startswith("text/html")


def test_repeated_redirect_uri_is_shown_on_a_page(browser: Browser) -> None:
    query = urlencode(auth_params()) + "&redirect_uri=" + WEB_REDIRECT
    assert_page(browser.get("/authorize?" + query), 400, "more than once")


# --- step 2: errors the client hears about ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_type": ""}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": "openid  docs:read"}, "invalid_scope"),
        ({"resource": "https://evil.example.com"}, "invalid_target"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "select_account"}, "invalid_request"),
        ({"dpop_jkt": "not-a-thumbprint"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": "\u00b2"}, "invalid_request"),
        ({"max_age": "1\u2075"}, "invalid_request"),
        ({"request": "eyJ..."}, "request_not_supported"),
        ({"request_uri": "urn:x"}, "request_uri_not_supported"),
    ],
    ids=[
        "requires PKCE",
        "refuses the plain PKCE method",
        "refuses PKCE without a method (plain by default)",
        "refuses a malformed code_challenge",
        "refuses the implicit flow",
        "refuses hybrid response types",
        "requires response_type",
        "refuses a scope the client may not have",
        "refuses a malformed scope",
        "refuses a resource the client may not use",
        "refuses prompt=none with another value",
        "refuses an unknown prompt",
        "refuses a malformed dpop_jkt",
        "refuses a negative max_age",
        "refuses a superscript digit as max_age (isdigit passes it, int did not: a 500)",
        "refuses a max_age ending in a superscript digit",
        "refuses request objects",
        "refuses request_uri",
    ],
)
def test_errors_are_redirected_with_state_and_iss(
    browser: Browser, change: dict[str, str], error: str
) -> None:
    params = {**auth_params(), **change}
    redirected_error(browser.authorize(params), params, error)


def test_a_repeated_parameter_is_refused(browser: Browser) -> None:
    params = auth_params()
    response = browser.get("/authorize?" + urlencode(params) + "&scope=openid")
    redirected_error(response, params, "invalid_request")


# --- sign-in, prompt, consent -------------------------------------------------------------------


def test_success_carries_code_state_and_iss(server: LiveServer, browser: Browser) -> None:
    params = auth_params()
    result = obtain_code(browser, params)
    assert set(result) == {"code", "state", "iss"}
    assert result["state"] == params["state"] and result["iss"] == server.url  # RFC 9207


def test_prompt_none_without_a_session_is_login_required(browser: Browser) -> None:
    params = auth_params(prompt="none")
    redirected_error(browser.authorize(params), params, "login_required")


def test_prompt_none_without_consent_is_consent_required(browser: Browser) -> None:
    assert browser.sign_in().status_code == 303
    params = auth_params(prompt="none")
    redirected_error(browser.authorize(params), params, "consent_required")


def test_prompt_none_with_session_and_consent_returns_a_code(browser: Browser) -> None:
    obtain_code(browser, auth_params())
    result = obtain_code(browser, auth_params(prompt="none"))
    assert "code" in result


def test_consent_is_remembered_and_prompt_consent_asks_again(browser: Browser) -> None:
    obtain_code(browser, auth_params())
    again = browser.authorize(auth_params())
    assert again.status_code == 302 and "code=" in again.headers["location"]
    asked = browser.authorize(auth_params(prompt="consent"))
    assert asked.status_code == 200 and "Allow" in asked.text


def test_a_wider_request_asks_for_consent_again(browser: Browser) -> None:
    obtain_code(browser, auth_params(scope="openid docs:read"))
    asked = browser.authorize(auth_params(scope="openid docs:read docs:write"))
    assert asked.status_code == 200 and "Change your docs" in asked.text


def test_prompt_login_asks_a_signed_in_user_again(browser: Browser) -> None:
    assert browser.sign_in().status_code == 303
    response = browser.authorize(auth_params(prompt="login"))
    assert response.status_code == 302 and "/login?" in response.headers["location"]
    # After signing in, the request continues without prompt=login (no loop).
    next_ = query_of(response.headers["location"])["next"]
    assert "prompt" not in next_


def test_max_age_forces_a_fresh_sign_in(server: LiveServer, browser: Browser) -> None:
    assert browser.sign_in().status_code == 303
    server.clock.offset = 120
    response = browser.authorize(auth_params(max_age="60"))
    assert response.status_code == 302 and "/login?" in response.headers["location"]


def test_denial_redirects_access_denied(browser: Browser) -> None:
    params = auth_params()
    response = browser.authorize(params)
    next_ = query_of(response.headers["location"])["next"]
    response = browser.get(browser.sign_in(next_=next_).headers["location"])
    redirected_error(browser.consent(response, "deny"), params, "access_denied")


def test_consent_page_names_client_scopes_and_agents(browser: Browser) -> None:
    response = browser.authorize(auth_params(scope="openid email docs:read mail:send"))
    next_ = query_of(response.headers["location"])["next"]
    page = browser.get(browser.sign_in(next_=next_).headers["location"]).text
    assert "Example Docs" in page and "web-app" in page
    for words in ("Know who you are", "See your e-mail address", "See your docs", "Send mail"):
        assert words in page
    # The web app hands the user's authority to agent-c: the page says so, and how far.
    assert "AI agents that may act for you" in page and "agent-c" in page
    assert "Until " in page and "127.0.0.1:9" in page


def test_consent_post_needs_the_csrf_token(browser: Browser) -> None:
    response = browser.authorize(auth_params())
    next_ = query_of(response.headers["location"])["next"]
    page = browser.get(browser.sign_in(next_=next_).headers["location"])
    fields = hidden_fields(page.text)
    # Non-ASCII: ``hmac.compare_digest`` raises for such text; a forged token is a plain 403.
    for forged in (
        {**fields, "csrf": []},
        {**fields, "csrf": ["x" * 43]},
        {**fields, "csrf": ["é" * 43]},
    ):
        response = browser.post_form("/authorize", {**forged, "decision": "allow"})
        assert_page(response, 403, "did not come from this site")
    cross_site = browser.post_form(
        "/authorize", {**fields, "decision": "allow"}, headers={"Origin": "https://evil.example"}
    )
    assert_page(cross_site, 403, "from another site")


def test_sign_in_needs_the_csrf_token(server: LiveServer) -> None:
    # A fresh browser (no CSRF cookie) posting straight to /login: a login CSRF attempt.
    with httpx.Client(base_url=server.url) as fresh:
        response = fresh.post("/login", data={"username": "alice", "password": PASSWORD})
    assert_page(response, 403, "did not come from this site")


@pytest.mark.parametrize(
    "cookie",
    ['deputize_browser="\\351"', "deputize_browser=\u00e9t\u00e9", "deputize_session=\"\\351\"",
     "deputize_browser=a.b", "deputize_browser=" + "a" * 129],
    ids=["quoted octal escape (unquotes to non-ASCII)", "raw non-ASCII", "a session cookie",
         "outside the alphabet we use", "too long"],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/login", "/logout", "/account"])
def test_a_cookie_we_could_not_have_set_is_ignored(
    server: LiveServer, cookie: str, path: str
) -> None:
    """Our cookies are ``token_urlsafe`` text.  A browser cookie that unquoted to "\u00e9" made
    every page with a form answer 500 (its CSRF token is an HMAC of the cookie as ASCII)."""
    with httpx.Client(base_url=server.url) as fresh:
        response = fresh.get(path, headers={b"Cookie": cookie.encode("utf-8")})
    assert response.status_code in (200, 302, 303), response.text  # /account: sign in first
    if path == "/login":
        fresh_cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("deputize_browser=")
        )
        assert re.fullmatch(r"deputize_browser=[A-Za-z0-9_-]{43}", fresh_cookie.split(";")[0])


# --- the session cookie -------------------------------------------------------------------------


def test_session_cookie_is_httponly_lax_and_ends_at_sign_out(browser: Browser) -> None:
    response = browser.sign_in()
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("deputize_session="))
    attributes = {a.strip().lower() for a in session.split(";")}
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert browser.get("/account").status_code == 200
    page = browser.get("/logout")
    fields = hidden_fields(page.text)
    out = browser.post_form("/logout", {"csrf": fields["csrf"][0]})
    assert out.status_code == 200 and "You are signed out" in out.text
    assert browser.get("/account").status_code == 302


def test_session_expires(server: LiveServer, browser: Browser) -> None:
    assert browser.sign_in().status_code == 303
    server.clock.offset = server.settings.session_lifetime + 1
    response = browser.get("/account")
    assert response.status_code == 302 and "/login?" in response.headers["location"]


# --- sign-in throttling -------------------------------------------------------------------------


def test_wrong_password_then_lockout_with_a_clear_message(
    server: LiveServer, browser: Browser
) -> None:
    limit = server.settings.max_failed_sign_ins
    for _ in range(limit - 1):
        response = browser.sign_in(password="wrong password")
        assert response.status_code == 401 and "Wrong user name or password" in response.text
    locked = browser.sign_in(password="wrong password")
    assert locked.status_code == 429 and "locked" in locked.text and "15 minutes" in locked.text
    # Locked means locked: the right password is refused too, without being tried.
    right = browser.sign_in()
    assert right.status_code == 429 and "Too many failed sign-in attempts" in right.text
    server.clock.offset = server.settings.sign_in_lockout + 1
    assert browser.sign_in().status_code == 303


def test_unknown_user_names_lock_too(server: LiveServer, browser: Browser) -> None:
    """Lockout says nothing about which user names exist."""
    for _ in range(server.settings.max_failed_sign_ins):
        last = browser.sign_in("mallory", "whatever password")
    assert last.status_code == 429 and "locked" in last.text


def test_a_disabled_user_cannot_sign_in(server: LiveServer, browser: Browser) -> None:
    from signin_support import run_db

    from deputize.server.accounts import actions as accounts

    run_db(server, lambda conn: accounts.disable_user(conn, "bob", 1, by="test"))
    response = browser.sign_in("bob")
    assert response.status_code == 401 and "disabled" in response.text


# --- the code at the token endpoint -------------------------------------------------------------


def test_pkce_verifier_must_match(server: LiveServer, browser: Browser) -> None:
    _, challenge = pkce()
    code = obtain_code(browser, auth_params(challenge=challenge))["code"]
    other, _ = pkce()
    assert_error(redeem(server, code, other), 400, "invalid_grant")
    assert_error(redeem(server, code, "short"), 400, "invalid_grant")


def test_redirect_uri_must_match_at_the_token_endpoint(
    server: LiveServer, browser: Browser
) -> None:
    verifier, challenge = pkce()
    code = obtain_code(browser, auth_params(challenge=challenge))["code"]
    response = redeem(server, code, verifier, redirect_uri=WEB_REDIRECT + "/other")
    assert_error(response, 400, "invalid_grant")
    # Non-ASCII (hmac.compare_digest would raise for it): a mismatch, not a server error.
    response = redeem(server, code, verifier, redirect_uri=WEB_REDIRECT + "/é")
    assert_error(response, 400, "invalid_grant")


def test_code_is_bound_to_its_client(server: LiveServer, browser: Browser) -> None:
    verifier, challenge = pkce()
    code = obtain_code(browser, auth_params(challenge=challenge))["code"]
    response = redeem(
        server, code, verifier, client_id="spa", redirect_uri=WEB_REDIRECT, dpop_key=SPA_KEY
    )
    assert_error(response, 400, "invalid_grant")
    assert redeem(server, code, verifier).status_code == 200


def test_code_expires(server: LiveServer, browser: Browser) -> None:
    verifier, challenge = pkce()
    code = obtain_code(browser, auth_params(challenge=challenge))["code"]
    server.clock.offset = server.settings.code_lifetime + 1
    assert_error(redeem(server, code, verifier), 400, "invalid_grant")


def test_code_reuse_revokes_what_it_issued(server: LiveServer, browser: Browser) -> None:
    verifier, challenge = pkce()
    code = obtain_code(browser, auth_params(challenge=challenge))["code"]
    first = redeem(server, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert introspect(server, tokens["access_token"])["active"] is True
    assert_error(redeem(server, code, verifier), 400, "invalid_grant")
    assert introspect(server, tokens["access_token"])["active"] is False
    assert_error(refresh_grant(server, tokens["refresh_token"]), 400, "invalid_grant")


def test_dpop_jkt_binds_the_code_to_a_key(server: LiveServer, browser: Browser) -> None:
    verifier, challenge = pkce()
    params = auth_params(challenge=challenge, dpop_jkt=WEB_KEY.public.thumbprint)
    code = obtain_code(browser, params)["code"]
    assert_error(redeem(server, code, verifier, dpop_key=SPA_KEY), 400, "invalid_grant")
    response = redeem(server, code, verifier, dpop_key=WEB_KEY)
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["cnf"]["jkt"] == WEB_KEY.public.thumbprint


def test_public_client_needs_dpop_and_gets_key_bound_tokens(
    server: LiveServer, browser: Browser
) -> None:
    verifier, challenge = pkce()
    params = auth_params("spa", redirect_uri=SPA_REDIRECT, scope="openid docs:read",
                         challenge=challenge)  # fmt: skip
    code = obtain_code(browser, params)["code"]
    response = redeem(server, code, verifier, client_id="spa", redirect_uri=SPA_REDIRECT,
                      dpop_key=None)  # fmt: skip
    assert_error(response, 400, "invalid_request")
    response = redeem(server, code, verifier, client_id="spa", redirect_uri=SPA_REDIRECT,
                      dpop_key=SPA_KEY)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    # RFC 9449 §5: the public client's refresh token is bound to its key.
    assert_error(refresh_grant(server, body["refresh_token"], client_id="spa", dpop_key=WEB_KEY),
                 400, "invalid_grant")  # fmt: skip
    assert_error(refresh_grant(server, body["refresh_token"], client_id="spa", dpop_key=None),
                 400, "invalid_request")  # fmt: skip
    renewed = refresh_grant(server, body["refresh_token"], client_id="spa", dpop_key=SPA_KEY)
    assert renewed.status_code == 200, renewed.text


def test_a_public_client_cannot_use_other_endpoints(server: LiveServer) -> None:
    response = server.client.post("/introspect", data={"client_id": "spa", "token": "x"})
    assert_error(response, 401, "invalid_client")


def test_hostile_sign_in_posts_get_a_page_not_a_crash(browser: Browser) -> None:
    wrong_type = browser.http.post("/login", content=b'{"username": "alice"}',
                                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert_page(wrong_type, 400, "content type")
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    huge = browser.http.post("/login", content=b"a=" + b"x" * 20_000, headers=form_type)
    assert_page(huge, 413, "larger than")
    long_name = browser.sign_in("n" * 5000, "p" * 5000)
    assert long_name.status_code == 401 and "Wrong user name or password" in long_name.text


def test_sign_ins_are_audited_with_identifiers_only(server: LiveServer, browser: Browser) -> None:
    import json

    from signin_support import run_db

    from deputize.server.storage import audit

    assert browser.sign_in(password="a wrong password").status_code == 401
    assert browser.sign_in("nobody-here", "typed-a-password-as-name").status_code == 401
    assert browser.sign_in().status_code == 303
    entries = run_db(server, lambda conn: audit.query(conn))
    events = [(e["event"], e["subject"], e["reason"]) for e in entries]
    assert ("sign_in_failed", "alice", "wrong password") in events
    assert ("sign_in_failed", None, "unknown user name") in events
    assert ("sign_in", "alice", None) in events
    text = json.dumps(entries)
    assert "a wrong password" not in text and PASSWORD not in text and "nobody-here" not in text
    assert run_db(server, lambda conn: audit.verify(conn)).ok


def test_an_agent_client_is_presented_as_an_agent(browser: Browser) -> None:
    from signin_support import AGENT_REDIRECT

    response = browser.authorize(auth_params("agent-d", redirect_uri=AGENT_REDIRECT))
    next_ = query_of(response.headers["location"])["next"]
    page = browser.get(browser.sign_in(next_=next_).headers["location"]).text
    assert '<span id="client-name">Travel Agent</span> to act for you?' in page
    assert "This is an AI agent, not a person." in page
    assert "may hand your permission to these agents" not in page
