"""Interop with a standard OAuth client library (authlib) and a plain-HTTP DPoP client.

Everything a client needs is discovered from the metadata first, as a standard client would
do it.  authlib has no DPoP support, so the DPoP flow is done by hand with httpx and a proof
built with joserfc: the nonce dance of RFC 9449 §8 must work for a client that is not ours.
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from collections.abc import Iterator
from typing import Any

import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; must precede ours)
import httpx
import pytest
from authlib.oauth2.client import DEFAULT_HEADERS
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from delegation_support import IDP, IDP_AUDIENCE, IDP_KEY, JWT, user_token
from joserfc import jws
from joserfc.jwk import ECKey

from deputize.keys import SigningKey
from deputize.server.clients.secrets import hash_secret

from support import API, SECRETS, LiveServer, ServerFactory, standard_clients

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx, which is
    # the HTTP client Deputize and these tests use.  Only that one warning is silenced.
    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=DeprecationWarning
    )
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT

POST_SECRET = "interop-post-secret-0123456789abcdefghijkl"


def discover(issuer: str) -> dict[str, Any]:
    """RFC 8414 §3: fetch the metadata and check it names the issuer we asked about."""
    response = httpx.get(issuer + "/.well-known/oauth-authorization-server", timeout=30)
    assert response.status_code == 200, response.text
    document = AuthorizationServerMetadata(response.json())
    assert document["issuer"] == issuer
    for key in ("issuer", "token_endpoint", "jwks_uri"):
        getattr(document, f"validate_{key}")()
    return dict(document)


def jwk_client(client_id: str, key: SigningKey) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk()]},
        "scopes": ["read"],
        "audiences": [API],
        "dpop_bound_access_tokens": False,
    }


@pytest.fixture
def metadata(server: LiveServer) -> dict[str, Any]:
    return discover(server.url)


@pytest.fixture
def authlib_client() -> Iterator[Any]:
    """A factory of authlib clients, all closed at the end of the test."""
    opened: list[Any] = []

    def make(**kwargs: Any) -> Any:
        client = OAuth2Client(timeout=30, **kwargs)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def introspect_as_resource_server(server: LiveServer, token: str) -> dict[str, Any]:
    response = server.client.post(
        "/introspect", data={"token": token}, headers=server.basic("resource-server")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- authlib: client_secret_basic, client_secret_post, private_key_jwt --------------------------


def test_client_secret_basic_fetch_introspect_revoke(
    server: LiveServer, metadata: dict[str, Any], authlib_client: Any
) -> None:
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]
    client = authlib_client(
        client_id="svc-bearer",
        client_secret=SECRETS["svc-bearer"],
        token_endpoint_auth_method="client_secret_basic",
        scope="read",
    )
    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    assert token["expires_in"] == server.settings.access_token_lifetime
    assert not token.is_expired(leeway=0)
    assert abs(token["expires_at"] - (time.time() + token["expires_in"])) < 30

    looked_up = client.introspect_token(
        metadata["introspection_endpoint"], token=token["access_token"]
    )
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["active"] is True
    assert looked_up.json()["client_id"] == "svc-bearer"
    assert looked_up.json()["token_type"] == "Bearer"

    revoked = client.revoke_token(
        metadata["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200, revoked.text
    after = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert after.json() == {"active": False}


def test_client_secret_post_fetch_introspect_revoke(
    server_factory: ServerFactory, authlib_client: Any
) -> None:
    server = server_factory.start(
        {
            "clients": [
                *standard_clients(),
                {
                    "client_id": "interop-post",
                    "token_endpoint_auth_method": "client_secret_post",
                    "client_secret_hash": hash_secret(POST_SECRET),
                    "scopes": ["read", "write"],
                    "audiences": [API],
                    "dpop_bound_access_tokens": False,
                },
            ]
        }
    )
    metadata = discover(server.url)
    assert "client_secret_post" in metadata["revocation_endpoint_auth_methods_supported"]
    client = authlib_client(
        client_id="interop-post",
        client_secret=POST_SECRET,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
    )
    token = client.fetch_token(
        metadata["token_endpoint"], grant_type="client_credentials", scope="write"
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "write"
    body = introspect_as_resource_server(server, token["access_token"])
    assert (body["active"], body["client_id"], body["aud"]) == (True, "interop-post", API)

    own = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert own.json()["active"] is True
    revoked = client.revoke_token(metadata["revocation_endpoint"], token=token["access_token"])
    assert revoked.status_code == 200, revoked.text
    assert introspect_as_resource_server(server, token["access_token"]) == {"active": False}


def test_client_secret_post_is_refused_with_the_wrong_secret(
    server: LiveServer, metadata: dict[str, Any], authlib_client: Any
) -> None:
    client = authlib_client(
        client_id="svc-post",
        client_secret="not-" + SECRETS["svc-post"],
        token_endpoint_auth_method="client_secret_post",
    )
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


def _authlib_key(key: SigningKey) -> Any:
    """The private key the way authlib takes it: a PEM string for RSA (its default), else a
    joserfc key object (authlib's PrivateKeyJWT imports bare PEM as RSA only)."""
    pem = key.to_pem().decode("ascii")
    return pem if key.alg == "RS256" else ECKey.import_key(pem)


@pytest.mark.parametrize(
    "alg",
    ["ES256", "RS256"],
    ids=["authlib signs ES256 client assertions", "authlib signs RS256 client assertions"],
)
def test_private_key_jwt_fetch_introspect_revoke(
    server_factory: ServerFactory, authlib_client: Any, alg: str
) -> None:
    key = SigningKey.generate(alg)
    server = server_factory.start(
        {
            "clients": [*standard_clients(), jwk_client("interop-jwt", key)],
            # authlib signs assertions valid for an hour (it has no setting for it); Deputize
            # defaults to at most 300 s, so this deployment allows an hour.
            "client_authentication": {"assertion_max_lifetime": 3600},
        }
    )
    metadata = discover(server.url)
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert alg in metadata["token_endpoint_auth_signing_alg_values_supported"]
    client = authlib_client(
        client_id="interop-jwt",
        client_secret=_authlib_key(key),
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )
    client.register_client_auth_method(PrivateKeyJWT(metadata["token_endpoint"], alg=alg))

    token = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    # Each request carries a fresh assertion (new jti), so the replay cache lets them through.
    second = client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert second["access_token"] != token["access_token"]

    own = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert own.status_code == 200, own.text
    assert own.json()["active"] is True
    assert own.json()["client_id"] == "interop-jwt"

    revoked = client.revoke_token(metadata["revocation_endpoint"], token=token["access_token"])
    assert revoked.status_code == 200, revoked.text
    assert introspect_as_resource_server(server, token["access_token"]) == {"active": False}
    assert introspect_as_resource_server(server, second["access_token"])["active"] is True


def test_authlib_hour_long_assertion_exceeds_the_default_limit(
    server_factory: ServerFactory, authlib_client: Any
) -> None:
    # With the default client_authentication.assertion_max_lifetime (300 s), authlib's
    # one-hour assertions are refused, and the error says why.
    key = SigningKey.generate("ES256")
    server = server_factory.start({"clients": [*standard_clients(), jwk_client("jwt", key)]})
    assert server.settings.client_assertion_max_lifetime == 300
    metadata = discover(server.url)
    client = authlib_client(
        client_id="jwt",
        client_secret=_authlib_key(key),
        token_endpoint_auth_method="private_key_jwt",
    )
    client.register_client_auth_method(PrivateKeyJWT(metadata["token_endpoint"], alg="ES256"))
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    assert "lifetime" in refused.value.description


# --- DPoP by hand: what a plain HTTP client does --------------------------------------------------


def dpop_proof(key: ECKey, url: str, nonce: str | None = None) -> str:
    """An RFC 9449 §4.2 proof built with joserfc, independent of Deputize's own code."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": "POST",
        "htu": url,
        "iat": int(time.time()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return jws.serialize_compact(header, json.dumps(claims).encode(), key)


def test_dpop_nonce_dance_with_plain_httpx(server: LiveServer) -> None:
    metadata = discover(server.url)
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    token_endpoint = metadata["token_endpoint"]
    key = ECKey.generate_key("P-256")
    credentials = ("svc-basic", SECRETS["svc-basic"])
    form = {"grant_type": "client_credentials", "scope": "read", "resource": API}

    with httpx.Client(timeout=30, auth=credentials) as http:
        # 1. A first proof without a nonce: the server asks for one (§8), it is not a failure.
        first = http.post(
            token_endpoint, data=form, headers={"DPoP": dpop_proof(key, token_endpoint)}
        )
        assert first.status_code == 400, first.text
        assert first.json()["error"] == "use_dpop_nonce"
        nonce = first.headers["DPoP-Nonce"]

        # 2. The same request again with a fresh proof carrying the nonce.
        proof = dpop_proof(key, token_endpoint, nonce)
        second = http.post(token_endpoint, data=form, headers={"DPoP": proof})
        assert second.status_code == 200, second.text
        body = second.json()
        assert body["token_type"] == "DPoP"
        assert body["scope"] == "read"

        # 3. A proof is single-use: replaying it is refused.
        replay = http.post(token_endpoint, data=form, headers={"DPoP": proof})
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_dpop_proof"

        # 4. The success carried the nonce to use next: no extra round trip for the next token.
        following = second.headers["DPoP-Nonce"]
        third = http.post(
            token_endpoint, data=form, headers={"DPoP": dpop_proof(key, token_endpoint, following)}
        )
        assert third.status_code == 200, third.text

    # The token is bound to the client's key by the RFC 7638 thumbprint joserfc computes.
    introspected = introspect_as_resource_server(server, body["access_token"])
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.thumbprint()}


def test_dpop_proof_for_another_url_is_refused(server: LiveServer) -> None:
    key = ECKey.generate_key("P-256")
    with httpx.Client(timeout=30, auth=("svc-basic", SECRETS["svc-basic"])) as http:
        # A request the server refuses still hands out the current nonce (§8.2).
        refused = http.post(server.token_endpoint, data={"grant_type": "client_credentials"})
        nonce = refused.headers["DPoP-Nonce"]
        response = http.post(
            server.token_endpoint,
            data={"grant_type": "client_credentials"},
            headers={"DPoP": dpop_proof(key, server.url + "/introspect", nonce)},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_dpop_proof"


# --- token exchange: authlib for the request, joserfc for the proof, no ath (decision 0010) ------

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def _current_nonce(token_endpoint: str) -> str:
    """The server's nonce, from a refused request (RFC 9449 §8.2), as a generic client gets it."""
    return httpx.post(token_endpoint, data={}, timeout=30).headers["DPoP-Nonce"]


@pytest.mark.parametrize(
    "strict",
    [False, True],
    ids=["a generic client's second hop without ath is accepted by default",
         "and refused with dpop.require_subject_token_ath"],
)  # fmt: skip
def test_authlib_second_hop_with_a_proof_without_ath(
    server_factory: ServerFactory, authlib_client: Any, strict: bool
) -> None:
    """A standard client doing both hops as generic code does: authlib authenticates and
    builds the RFC 8693 request; the DPoP proof carries what RFC 9449 §4.2 asks of every proof
    (no ``ath``, which §4.2 asks for only at resource servers)."""
    auth_key = SigningKey.generate("ES256")
    server = server_factory.start(
        {
            "clients": [
                *standard_clients(),
                {
                    **jwk_client("interop-agent", auth_key),
                    "agent": True,
                    "dpop_bound_access_tokens": True,
                    "grant_types": [TOKEN_EXCHANGE],
                    "scopes": ["read", "write"],
                },
            ],
            "client_authentication": {"assertion_max_lifetime": 3600},  # authlib's hour
            "trusted_issuers": [
                {"issuer": IDP, "audience": IDP_AUDIENCE, "jwks": {"keys": [IDP_KEY.public_jwk()]}}
            ],
            "delegation": {"grants": [{"subject": "alice", "agents": ["interop-agent"]}]},
            **({"dpop": {"require_subject_token_ath": True}} if strict else {}),
        }
    )
    metadata = discover(server.url)
    assert TOKEN_EXCHANGE in metadata["grant_types_supported"]
    endpoint = metadata["token_endpoint"]
    dpop_key = ECKey.generate_key("P-256")
    client = authlib_client(
        client_id="interop-agent",
        client_secret=_authlib_key(auth_key),
        token_endpoint_auth_method="private_key_jwt",
    )
    client.register_client_auth_method(PrivateKeyJWT(endpoint, alg="ES256"))

    def hop(subject_token: str, subject_token_type: str, **params: str) -> Any:
        proof = dpop_proof(dpop_key, endpoint, _current_nonce(endpoint))
        return client.fetch_token(
            endpoint, grant_type=TOKEN_EXCHANGE, subject_token=subject_token,
            subject_token_type=subject_token_type, headers={**DEFAULT_HEADERS, "DPoP": proof},
            **params,
        )  # fmt: skip

    first = hop(user_token(), JWT)
    assert (first["token_type"], first["scope"]) == ("DPoP", "read write")
    assert first["issued_token_type"] == ACCESS_TOKEN_TYPE
    if strict:
        with pytest.raises(OAuthError) as refused:
            hop(first["access_token"], ACCESS_TOKEN_TYPE, scope="read")
        assert refused.value.error == "invalid_dpop_proof"
        return
    second = hop(first["access_token"], ACCESS_TOKEN_TYPE, scope="read")
    assert (second["token_type"], second["scope"]) == ("DPoP", "read")
    body = introspect_as_resource_server(server, second["access_token"])
    assert (body["active"], body["sub"], body["act"]) == (True, "alice", {"sub": "interop-agent"})
    assert body["cnf"] == {"jkt": dpop_key.thumbprint()}
