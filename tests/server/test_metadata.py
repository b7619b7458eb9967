"""Discovery (RFC 8414) and the JWK Set (RFC 7517 §5) over real HTTP.

The metadata is checked against authlib's RFC 8414 validators and the JWKS against an
independent RFC 7638 thumbprint and joserfc, so neither is judged by Deputize's own code alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet as JoserfcKeySet

from deputize.keys import KeySet, SigningKey, parse

from support import API, LiveServer, ServerFactory

WELL_KNOWN = ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
#: RFC 7638 §3.2: the required members, per key type, that the thumbprint hashes.
THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


def metadata(server: LiveServer, path: str = WELL_KNOWN[0]) -> dict[str, Any]:
    response = server.client.get(path)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


# --- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WELL_KNOWN, ids=["RFC 8414 path", "OpenID discovery path"])
def test_metadata_is_served_at_both_well_known_paths(server: LiveServer, path: str) -> None:
    response = server.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=300"
    # RFC 8414 §3.3: the issuer in the document is exactly the one it was fetched for.
    assert response.json()["issuer"] == server.url
    assert response.json() == metadata(server)


def test_metadata_advertises_exactly_what_is_implemented(server: LiveServer) -> None:
    document = metadata(server)
    assert document["grant_types_supported"] == [
        "authorization_code",
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    # The code flow, with PKCE S256 only (plain is refused) and RFC 9207 iss in responses.
    assert document["response_types_supported"] == ["code"]
    assert document["response_modes_supported"] == ["query"]
    assert document["authorization_endpoint"] == server.url + "/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["prompt_values_supported"] == ["none", "login", "consent"]
    # OpenID Connect discovery: what is implemented, nothing else.
    assert document["userinfo_endpoint"] == server.url + "/userinfo"
    assert document["end_session_endpoint"] == server.url + "/logout"
    assert document["subject_types_supported"] == ["public"]
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert document["request_parameter_supported"] is False
    assert document["request_uri_parameter_supported"] is False
    assert {"openid", "profile", "email"} <= set(document["scopes_supported"])
    assert "registration_endpoint" not in document
    # RFC 9126 §5: PAR, optional unless sign_in.require_pushed_authorization_requests is set.
    assert document["pushed_authorization_request_endpoint"] == server.url + "/par"
    assert document["require_pushed_authorization_requests"] is False
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",  # public clients, at the token and PAR endpoints only, with PKCE and DPoP
    ]
    for method_list in (
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ):
        assert document[method_list] == [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ]
    for alg_list in (
        "token_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",  # RFC 9449 §5.1
    ):
        algs = document[alg_list]
        assert algs, alg_list
        assert "none" not in algs and not any(a.startswith("HS") for a in algs), alg_list
    assert {"read", "write"} <= set(document["scopes_supported"])


@pytest.mark.parametrize(
    ("member", "method"),
    [
        ("token_endpoint", "POST"),
        ("introspection_endpoint", "POST"),
        ("revocation_endpoint", "POST"),
        ("jwks_uri", "GET"),
    ],
    ids=[
        "the token endpoint is under the issuer and answers",
        "the introspection endpoint is under the issuer and answers",
        "the revocation endpoint is under the issuer and answers",
        "the jwks_uri is under the issuer and answers",
    ],
)
def test_advertised_endpoints_exist(server: LiveServer, member: str, method: str) -> None:
    url = metadata(server)[member]
    assert url.startswith(server.url + "/")
    # Fetched by absolute URL exactly as advertised, with a client that knows nothing else.
    with httpx.Client(timeout=30) as client:
        if method == "GET":
            response = client.get(url)
            assert response.status_code == 200
            assert "keys" in response.json()
        else:
            # An empty POST is refused by the endpoint itself (an OAuth error, not a 404/405).
            response = client.post(url, data={})
            assert response.status_code in (400, 401), response.text
            assert response.json()["error"] in ("invalid_request", "invalid_client")


def test_authlib_validates_the_metadata(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # authlib's https checks accept loopback http (RFC 8252 §7.3), so the live document, with
    # its http://127.0.0.1 issuer, is validated as served; make sure the checks are not
    # switched off from the environment.
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    document = AuthorizationServerMetadata(metadata(server))
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        getattr(document, f"validate_{key}")()
    document.validate()


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("issuer", "http://deputize.example.com"),
        ("token_endpoint", "http://deputize.example.com/token"),
        ("token_endpoint_auth_signing_alg_values_supported", ["none"]),
    ],
    ids=[
        "authlib rejects a plain http issuer off loopback",
        "authlib rejects a plain http token endpoint off loopback",
        "authlib rejects alg none for client assertions",
    ],
)
def test_authlib_validation_is_not_vacuous(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, member: str, value: object
) -> None:
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    document = AuthorizationServerMetadata({**metadata(server), member: value})
    with pytest.raises(ValueError):
        getattr(document, f"validate_{member}")()


def test_every_advertised_dpop_algorithm_is_accepted(server: LiveServer) -> None:
    for alg in metadata(server)["dpop_signing_alg_values_supported"]:
        holder = SigningKey.generate(alg)
        response = server.token({"resource": API}, dpop_key=holder)
        assert response.status_code == 200, (alg, response.text)
        assert response.json()["token_type"] == "DPoP"


# --- JWKS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "max_age"),
    [(None, 300), ({"keys": {"jwks_max_age": 120}}, 120)],
    ids=["caches for the default five minutes", "caches for the configured jwks_max_age"],
)
def test_jwks_headers(server_factory: ServerFactory, overrides: Any, max_age: int) -> None:
    server = server_factory.start(overrides)
    assert server.settings.jwks_max_age == max_age
    response = server.client.get("/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == f"public, max-age={max_age}"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2  # a strong ETag


@pytest.mark.parametrize(
    ("condition", "status"),
    [
        ("{etag}", 304),
        ('"something-else", {etag}', 304),
        ("W/{etag}", 304),
        ("*", 304),
        ('"something-else"', 200),
    ],
    ids=[
        "the current ETag gets 304",
        "a list holding the current ETag gets 304",
        "the weak form of the current ETag gets 304",
        "a wildcard gets 304",
        "an ETag that is not current gets the set",
    ],
)
def test_jwks_conditional_get(server: LiveServer, condition: str, status: int) -> None:
    first = server.client.get("/jwks")
    etag = first.headers["etag"]
    response = server.client.get("/jwks", headers={"If-None-Match": condition.format(etag=etag)})
    assert response.status_code == status
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == first.headers["cache-control"]
    if status == 304:
        assert response.content == b""
    else:
        assert response.content == first.content


def test_jwks_on_first_start_holds_the_active_and_the_next_key(server: LiveServer) -> None:
    keys = server.client.get("/jwks").json()["keys"]
    assert len(keys) == 2
    assert len({key["kid"] for key in keys}) == 2
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["kid"] == rfc7638_thumbprint(key)
        assert key["use"] == "sig"
        assert key["alg"] == server.settings.signing_alg
    # One of them signs tokens now; the other is published ahead of its turn.
    token = server.token(dpop_key=SigningKey.generate("ES256")).json()["access_token"]
    signing_kid = parse(token, algorithms=["ES256"], typ="at+jwt").kid
    assert signing_kid in {key["kid"] for key in keys}


@pytest.mark.parametrize(
    "alg",
    ["ES256", "EdDSA", "RS256"],
    ids=["an ES256 key set", "an EdDSA key set", "an RS256 key set"],
)
def test_jwks_for_each_signing_algorithm(server_factory: ServerFactory, alg: str) -> None:
    server = server_factory.start({"tokens": {"signing_alg": alg}})
    keys = server.client.get("/jwks").json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["kid"] == rfc7638_thumbprint(key)
        assert (key["alg"], key["use"]) == (alg, "sig")
    issued = server.token(dpop_key=SigningKey.generate("ES256"))
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    parsed = parse(token, algorithms=[alg], typ="at+jwt")
    key = KeySet.from_jwks({"keys": keys}).find(parsed)
    assert key is not None
    assert parsed.verify(key)["iss"] == server.url


def test_tokens_verify_with_the_jwks_in_an_independent_library(server: LiveServer) -> None:
    jwks = server.client.get("/jwks").json()
    issued = server.token({"scope": "read"}, dpop_key=SigningKey.generate("ES256"))
    assert issued.status_code == 200, issued.text
    # joserfc picks the key by kid from the published set and checks the signature.
    decoded = joserfc_jwt.decode(issued.json()["access_token"], JoserfcKeySet.import_key_set(jwks))
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] in {key["kid"] for key in jwks["keys"]}
    assert decoded.claims["iss"] == server.url
    assert decoded.claims["scope"] == "read"
    # joserfc computes the same RFC 7638 thumbprints that Deputize uses as kids.
    for key in jwks["keys"]:
        assert JoserfcKeySet.import_key_set({"keys": [key]}).keys[0].thumbprint() == key["kid"]
