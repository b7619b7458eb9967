"""Interop: Authlib's OAuth 2 client signs a person in against Deputize the way the MCP SDK
does (authorization request with ``resource`` and PKCE S256, token request with ``resource``
again: RFC 8707 §2.2), directly and through a pushed authorization request (RFC 9126).

Authlib has no PAR support, so its authorization URL's parameters are pushed with plain httpx.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; must precede ours)
import httpx
import pytest
from authlib.common.security import generate_token
from delegation_support import DOCS, MAIL, claims_of, register_at_runtime
from signin_support import Browser, obtain_code, query_of, start

from deputize.server.clients.secrets import hash_secret

from support import LiveServer, ServerFactory

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx.
    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=DeprecationWarning
    )
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

CLIENT_ID = "authlib-app"
SECRET = "authlib-app-secret-0123456789abcdefghijkl"
REDIRECT = "http://127.0.0.1:9/authlib"


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    live = start(server_factory)
    # A confidential client without DPoP (Authlib has none), registered at runtime.
    register_at_runtime(live, [{
        "client_id": CLIENT_ID, "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": hash_secret(SECRET),
        "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [REDIRECT],
        "scopes": ["docs:read"], "audiences": [DOCS, MAIL], "dpop_bound_access_tokens": False,
    }])  # fmt: skip
    return live


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.close()


@pytest.fixture
def client() -> Iterator[Any]:
    oauth = OAuth2Client(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        token_endpoint_auth_method="client_secret_basic",
        redirect_uri=REDIRECT,
        scope="docs:read",
        code_challenge_method="S256",
        timeout=30,
    )
    yield oauth
    oauth.close()


def discover(server: LiveServer) -> dict[str, Any]:
    response = server.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def authorization_params(client: Any, document: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Authlib's authorization request, with ``resource``, as a dict of its parameters."""
    verifier = generate_token(48)
    url, _ = client.create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, resource=DOCS
    )
    return dict(httpx.URL(url).params), verifier


def callback(result: dict[str, str]) -> str:
    return REDIRECT + "?" + str(httpx.QueryParams(result))


def test_authlib_sends_resource_in_both_requests(
    server: LiveServer, browser: Browser, client: Any
) -> None:
    document = discover(server)
    params, verifier = authorization_params(client, document)
    assert params["resource"] == DOCS and params["code_challenge_method"] == "S256"
    result = obtain_code(browser, params)
    token = client.fetch_token(
        document["token_endpoint"], authorization_response=callback(result),
        code_verifier=verifier, resource=DOCS,
    )  # fmt: skip
    assert token["token_type"] == "Bearer"
    assert claims_of(token["access_token"])["aud"] == DOCS
    # Refresh with the same resource (the MCP SDK's habit), then one the sign-in did not name.
    refreshed = client.refresh_token(
        document["token_endpoint"], refresh_token=token["refresh_token"], resource=DOCS
    )
    assert claims_of(refreshed["access_token"])["aud"] == DOCS
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(
            document["token_endpoint"], refresh_token=refreshed["refresh_token"], resource=MAIL
        )
    assert refused.value.error == "invalid_target"


def test_authlib_request_pushed_to_par(server: LiveServer, browser: Browser, client: Any) -> None:
    document = discover(server)
    assert document["pushed_authorization_request_endpoint"] == server.url + "/par"
    params, verifier = authorization_params(client, document)
    pushed = httpx.post(
        document["pushed_authorization_request_endpoint"], data=params,
        auth=(CLIENT_ID, SECRET), timeout=30,
    )  # fmt: skip
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    result = obtain_code(
        browser, {"client_id": CLIENT_ID, "request_uri": request_uri, "redirect_uri": REDIRECT}
    )
    assert result["state"] == params["state"]
    token = client.fetch_token(
        document["token_endpoint"], authorization_response=callback(result),
        code_verifier=verifier, resource=DOCS,
    )  # fmt: skip
    assert claims_of(token["access_token"])["aud"] == DOCS
    assert query_of(callback(result))["iss"] == server.url
