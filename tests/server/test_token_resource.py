"""RFC 8707 §2.2 at the token endpoint: ``resource`` at the authorization-code and refresh token
requests narrows the access token's audience to some of the authorization request's
resources, never wider; a refusal neither spends the code nor rotates the refresh token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from delegation_support import DOCS, MAIL, claims_of
from signin_support import (
    WEB_KEY,
    WEB_REDIRECT,
    WEB_SECRET,
    Browser,
    auth_params,
    obtain_code,
    pkce,
    query_of,
    start,
)

from support import LiveServer, ServerFactory, assert_error


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.close()


def post_token(server: LiveServer, form: dict[str, Any]) -> httpx.Response:
    headers = {**server.basic("web-app", WEB_SECRET), "DPoP": server.proof(WEB_KEY)}
    return server.client.post("/token", data=form, headers=headers)


def code_for(browser: Browser, resources: list[str]) -> tuple[str, str]:
    """A code from an authorization request naming ``resources``; with its PKCE verifier."""
    verifier, challenge = pkce()
    params = auth_params(scope="docs:read", challenge=challenge)
    query = httpx.QueryParams([*params.items(), *(("resource", r) for r in resources)])
    response = browser.get(f"/authorize?{query}")
    if response.status_code == 302 and "/login?" in response.headers["location"]:
        next_ = query_of(response.headers["location"])["next"]
        signed_in = browser.sign_in("alice", next_=next_)
        assert signed_in.status_code == 303, signed_in.text
        response = browser.get(signed_in.headers["location"])
    if response.status_code == 200:
        response = browser.consent(response)
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(WEB_REDIRECT), location
    return query_of(location)["code"], verifier


def redeem(code: str, verifier: str, resource: list[str] | None = None) -> dict[str, Any]:
    form: dict[str, Any] = {"grant_type": "authorization_code", "code": code,
                            "code_verifier": verifier, "redirect_uri": WEB_REDIRECT}  # fmt: skip
    if resource is not None:
        form["resource"] = resource
    return form


def aud_of(token: str) -> list[str]:
    aud = claims_of(token)["aud"]
    return [aud] if isinstance(aud, str) else list(aud)


def test_resource_at_the_code_request_narrows_the_audience(
    server: LiveServer, browser: Browser
) -> None:
    code, verifier = code_for(browser, [DOCS, MAIL])
    response = post_token(server, redeem(code, verifier, [MAIL]))
    assert response.status_code == 200, response.text
    assert aud_of(response.json()["access_token"]) == [MAIL]
    # Refresh without resource: the whole grant again — the code request narrowed one token only.
    refreshed = post_token(
        server, {"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert sorted(aud_of(refreshed.json()["access_token"])) == sorted([DOCS, MAIL])


def test_the_same_resources_in_both_requests_as_the_mcp_sdk_sends_them(
    server: LiveServer, browser: Browser
) -> None:
    code, verifier = code_for(browser, [DOCS])
    response = post_token(server, redeem(code, verifier, [DOCS]))
    assert response.status_code == 200, response.text
    assert aud_of(response.json()["access_token"]) == [DOCS]


def test_no_resource_at_the_token_request_keeps_the_authorization_requests(
    server: LiveServer, browser: Browser
) -> None:
    code, verifier = code_for(browser, [DOCS, MAIL])
    response = post_token(server, redeem(code, verifier))
    assert response.status_code == 200, response.text
    assert sorted(aud_of(response.json()["access_token"])) == sorted([DOCS, MAIL])


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(["https://evil.example.com"], id="not in the authorization request"),
        pytest.param([DOCS + "#frag"], id="with a fragment"),
        pytest.param(["/relative/path"], id="relative"),
        pytest.param(["docs.example.com"], id="no scheme"),
        pytest.param(["http://[::1"], id="not a URI"),
        pytest.param([DOCS, "https://evil.example.com"], id="repeated, one outside"),
    ],
)
def test_code_request_refuses_a_resource_outside_the_grant(
    server: LiveServer, browser: Browser, resource: list[str]
) -> None:
    code, verifier = code_for(browser, [DOCS])
    assert_error(post_token(server, redeem(code, verifier, resource)), 400, "invalid_target")
    # The refusal did not spend the code: corrected, the same code is redeemed.
    retried = post_token(server, redeem(code, verifier, [DOCS]))
    assert retried.status_code == 200, retried.text
    assert aud_of(retried.json()["access_token"]) == [DOCS]


def test_a_client_audience_not_asked_for_at_authorize_is_refused(
    server: LiveServer, browser: Browser
) -> None:
    """MAIL is one of web-app's audiences, but the authorization request asked for DOCS only."""
    code, verifier = code_for(browser, [DOCS])
    assert_error(post_token(server, redeem(code, verifier, [MAIL])), 400, "invalid_target")


def test_refresh_narrows_the_access_token_but_not_the_refresh_token(
    server: LiveServer, browser: Browser
) -> None:
    code, verifier = code_for(browser, [DOCS, MAIL])
    first = post_token(server, redeem(code, verifier)).json()
    narrowed = post_token(
        server,
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
         "resource": [DOCS]},
    )  # fmt: skip
    assert narrowed.status_code == 200, narrowed.text
    assert aud_of(narrowed.json()["access_token"]) == [DOCS]
    # The rotated refresh token still carries both resources: MAIL alone is allowed next time.
    again = post_token(
        server,
        {"grant_type": "refresh_token", "refresh_token": narrowed.json()["refresh_token"],
         "resource": [MAIL]},
    )  # fmt: skip
    assert again.status_code == 200, again.text
    assert aud_of(again.json()["access_token"]) == [MAIL]


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(["https://evil.example.com"], id="not in the grant"),
        pytest.param([MAIL + "#x"], id="with a fragment"),
        pytest.param(["relative"], id="relative"),
        pytest.param([DOCS, "https://evil.example.com"], id="repeated, one outside"),
    ],
)
def test_refresh_refuses_a_resource_outside_the_grant_and_keeps_the_token(
    server: LiveServer, browser: Browser, resource: list[str]
) -> None:
    code, verifier = code_for(browser, [DOCS])
    first = post_token(server, redeem(code, verifier)).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert_error(post_token(server, {**form, "resource": resource}), 400, "invalid_target")
    # Not rotated by the refusal (a rotation would make this a reuse that revokes the family).
    retried = post_token(server, form)
    assert retried.status_code == 200, retried.text


def test_without_resource_at_authorize_the_clients_audiences_bound_the_narrowing(
    server: LiveServer, browser: Browser
) -> None:
    """No resource in the authorization request: the token is for the client's audiences
    (as before), and a token request may pick among them, and nothing else."""
    verifier, challenge = pkce()
    params = auth_params(scope="docs:read", challenge=challenge)
    code = obtain_code(browser, params)["code"]
    assert_error(
        post_token(server, redeem(code, verifier, ["https://evil.example.com"])),
        400, "invalid_target",
    )  # fmt: skip
    response = post_token(server, redeem(code, verifier, [MAIL]))
    assert response.status_code == 200, response.text
    assert aud_of(response.json()["access_token"]) == [MAIL]
