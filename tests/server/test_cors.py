"""CORS: a public single-page app's origin may call the token, revocation and UserInfo
endpoints; discovery and the JWKS are readable from anywhere; nothing else, never with cookies."""

from __future__ import annotations

import pytest
from signin_support import start

from support import LiveServer, ServerFactory

SPA_ORIGIN = "http://127.0.0.1:9"  # the origin of the public client's redirect URI
EVIL = "https://evil.example"


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


def preflight(server: LiveServer, path: str, origin: str) -> dict[str, str]:
    response = server.client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "dpop, content-type",
        },
    )
    return {"status": str(response.status_code), **dict(response.headers)}


@pytest.mark.parametrize("path", ["/token", "/par", "/revoke", "/userinfo"])
def test_a_public_clients_origin_may_call_client_endpoints(server: LiveServer, path: str) -> None:
    answer = preflight(server, path, SPA_ORIGIN)
    assert answer["status"] == "204"
    assert answer["access-control-allow-origin"] == SPA_ORIGIN
    assert "DPoP" in answer["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in answer


def test_the_token_response_exposes_the_dpop_nonce(server: LiveServer) -> None:
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"Origin": SPA_ORIGIN}
    )
    assert response.headers["access-control-allow-origin"] == SPA_ORIGIN
    assert "DPoP-Nonce" in response.headers["access-control-expose-headers"]
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    ("path", "origin"),
    [("/token", EVIL), ("/userinfo", EVIL), ("/login", SPA_ORIGIN), ("/authorize", SPA_ORIGIN),
     ("/introspect", SPA_ORIGIN), ("/account", SPA_ORIGIN)],
    ids=["no other origin at the token endpoint", "no other origin at UserInfo",
         "never the sign-in page", "never the authorization endpoint",
         "never introspection", "never the account page"],
)  # fmt: skip
def test_everything_else_gets_no_cors(server: LiveServer, path: str, origin: str) -> None:
    answer = preflight(server, path, origin)
    assert "access-control-allow-origin" not in answer
    response = server.client.get(path, headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "path",
    ["/jwks", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"],
)
def test_public_documents_are_readable_from_anywhere(server: LiveServer, path: str) -> None:
    response = server.client.get(path, headers={"Origin": EVIL})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
