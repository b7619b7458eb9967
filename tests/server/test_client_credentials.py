"""client_credentials over real HTTP: the happy paths, token contents and DPoP binding."""

from __future__ import annotations

import time

from deputize.keys import KeySet, SigningKey, parse

from support import API, LiveServer


def _verify(server: LiveServer, token: str) -> dict[str, object]:
    keys = KeySet.from_jwks(server.client.get("/jwks").json())
    parsed = parse(token, algorithms=["ES256"], typ="at+jwt")
    key = keys.find(parsed)
    assert key is not None
    return dict(parsed.verify(key))


def test_dpop_bound_token_for_secret_client(server: LiveServer) -> None:
    holder = SigningKey.generate("ES256")
    response = server.token({"scope": "read", "resource": API}, dpop_key=holder)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert body["scope"] == "read"
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body
    claims = _verify(server, body["access_token"])
    assert claims["iss"] == server.url
    assert claims["sub"] == claims["client_id"] == "svc-basic"
    assert claims["aud"] == API
    assert claims["scope"] == "read"
    assert claims["cnf"] == {"jkt": holder.kid}
    assert isinstance(claims["exp"], int) and claims["exp"] > time.time()
    assert isinstance(claims["jti"], str) and "act" not in claims


def test_private_key_jwt_agent(server: LiveServer) -> None:
    holder = SigningKey.generate("EdDSA")
    response = server.token(client_id="agent-jwt", dpop_key=holder)
    assert response.status_code == 200, response.text
    claims = _verify(server, response.json()["access_token"])
    assert claims["client_id"] == "agent-jwt"
    assert claims["scope"] == "read write"
    assert claims["cnf"] == {"jkt": holder.kid}


def test_client_secret_post(server: LiveServer) -> None:
    response = server.token(client_id="svc-post", dpop_key=SigningKey.generate())
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"


def test_bearer_only_for_clients_that_allow_it(server: LiveServer) -> None:
    response = server.token(client_id="svc-bearer")
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in _verify(server, response.json()["access_token"])

    refused = server.token(client_id="svc-basic")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
