"""Token introspection (RFC 7662) over real HTTP: who may ask, what an active answer holds, and
that everything Deputize cannot vouch for is the bare ``{"active": false}``.

Forged tokens are made with real keys: a fresh key that reuses our ``kid``, and our own signing
key read from the database the way the keyring reads it, so a forgery differs from a genuine
token in exactly one respect.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from deputize.keys import SigningKey, parse, sign
from deputize.server.clients.secrets import hash_secret
from deputize.server.storage import keys as key_rows
from deputize.server.storage.database import Database

from support import (
    API,
    OTHER_API,
    SECRETS,
    LiveServer,
    ServerFactory,
    standard_clients,
)

#: Clients whose client_id is a resource (audience) URI, so tokens can name them.
AUDIENCE_SECRETS = {
    API: "api-secret-0123456789abcdefghijklmnopqrstuv",
    OTHER_API: "other-api-secret-0123456789abcdefghijklmno",
}
ACTIVE_MEMBERS = {
    "active",
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "cnf",
    "token_type",
}


# --- helpers -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def credentials(caller: str, secret: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and form fields that authenticate ``caller`` the way it is registered.

    RFC 6749 §2.3.1: Basic credentials are form-urlencoded first, which matters for a client_id
    that is a URI (its ``:`` would otherwise end the user-id part).
    """
    secret = secret if secret is not None else AUDIENCE_SECRETS.get(caller) or SECRETS[caller]
    if caller == "svc-post":
        return {}, {"client_id": caller, "client_secret": secret}
    raw = f"{quote_plus(caller)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}, {}


def introspect(
    server: LiveServer, token: str, caller: str = "resource-server", secret: str | None = None
) -> httpx.Response:
    headers, form = credentials(caller, secret)
    return server.client.post("/introspect", data={"token": token, **form}, headers=headers)


def dpop_token(server: LiveServer, data: dict[str, str] | None = None) -> tuple[str, SigningKey]:
    holder = SigningKey.generate("ES256")
    response = server.token(data, dpop_key=holder)
    assert response.status_code == 200, response.text
    return response.json()["access_token"], holder


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a token we hold, unverified (tests compare it with what the server says)."""
    return dict(parse(token, algorithms=["ES256"], typ="at+jwt").claims)


def header_of(token: str) -> dict[str, Any]:
    return dict(parse(token, algorithms=["ES256"], typ="at+jwt").header)


def our_keys(server: LiveServer) -> dict[str, SigningKey]:
    """The server's signing keys by state (active, next), read straight from its database."""

    async def load() -> list[key_rows.KeyRow]:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                return await key_rows.load(conn)
        finally:
            await db.dispose()

    rows = asyncio.run(load())
    return {row.state: SigningKey.from_pem(row.private_pem.encode(), row.alg) for row in rows}


def resign(token: str, key: SigningKey, *, typ: str = "at+jwt", **changes: Any) -> str:
    """The same claims as ``token`` (with ``changes``), signed again with ``key``."""
    return sign({**claims_of(token), **changes}, key, typ=typ)


# --- forgeries: each takes the server and a genuine token, returns something not to trust --------


def foreign_key_with_our_kid(server: LiveServer, token: str) -> str:
    impostor = SigningKey.generate("ES256")
    kid = header_of(token)["kid"]
    header = {"alg": "ES256", "typ": "at+jwt", "kid": kid}
    signing_input = _segment(header) + "." + _segment(claims_of(token))
    return signing_input + "." + _b64(impostor.sign(signing_input.encode()))


def alg_none(server: LiveServer, token: str) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": header_of(token)["kid"]}
    return _segment(header) + "." + _segment(claims_of(token)) + "."


def hs256_keyed_with_our_public_key(server: LiveServer, token: str) -> str:
    # The classic confusion: HMAC keyed with the verifier's public key, in PEM and as JWK.
    active = our_keys(server)["active"]
    pem = serialization.load_pem_private_key(active.to_pem(), password=None).public_key()
    secret = pem.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": active.kid}
    signing_input = _segment(header) + "." + _segment(claims_of(token))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def signature_stripped(server: LiveServer, token: str) -> str:
    return token.rsplit(".", 1)[0] + "."


def payload_tampered(server: LiveServer, token: str) -> str:
    header, _, signature = token.split(".")
    widened = {**claims_of(token), "scope": "read write admin"}
    return f"{header}.{_segment(widened)}.{signature}"


def our_key_but_typ_jwt(server: LiveServer, token: str) -> str:
    return resign(token, our_keys(server)["active"], typ="JWT")


def our_key_but_typ_dpop(server: LiveServer, token: str) -> str:
    return resign(token, our_keys(server)["active"], typ="dpop+jwt")


def our_key_but_other_issuer(server: LiveServer, token: str) -> str:
    return resign(token, our_keys(server)["active"], iss="https://elsewhere.example.com")


def our_key_but_jti_not_in_ledger(server: LiveServer, token: str) -> str:
    return resign(token, our_keys(server)["active"], jti="never-issued-by-this-deployment")


def our_key_without_exp(server: LiveServer, token: str) -> str:
    claims = claims_of(token)
    del claims["exp"]
    return sign(claims, our_keys(server)["active"], typ="at+jwt")


Forgery = Callable[[LiveServer, str], str]

INACTIVE_CASES: list[tuple[Forgery, str]] = [
    (lambda s, t: "not-a-jwt", "garbage is inactive"),
    (lambda s, t: "a.b.c", "three segments of junk are inactive"),
    (lambda s, t: t + "x", "a token with bytes appended is inactive"),
    (foreign_key_with_our_kid, "a token signed by a foreign key under our kid is inactive"),
    (alg_none, "an unsigned alg none token is inactive"),
    (hs256_keyed_with_our_public_key, "an HS256 token keyed with our public key is inactive"),
    (signature_stripped, "a token with its signature stripped is inactive"),
    (payload_tampered, "a token whose payload was changed after signing is inactive"),
    (our_key_but_typ_jwt, "our own signature on a typ JWT token is inactive"),
    (our_key_but_typ_dpop, "our own signature on a typ dpop+jwt token is inactive"),
    (our_key_but_other_issuer, "our own signature with another issuer is inactive"),
    (our_key_but_jti_not_in_ledger, "our own signature on a jti the ledger never saw is inactive"),
    (our_key_without_exp, "our own signature on a token without exp is inactive"),
]


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"resource-server:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"nobody:" + b"x" * 40).decode()},
        {"Authorization": "Bearer something"},
    ],
    ids=[
        "refuses a caller that does not authenticate",
        "refuses a wrong client secret",
        "refuses an unknown client",
        "refuses a bearer token in place of client credentials",
    ],
)
def test_introspection_requires_client_authentication(
    server: LiveServer, headers: dict[str, str]
) -> None:
    token, _ = dpop_token(server)
    response = server.client.post("/introspect", data={"token": token}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["cache-control"] == "no-store"


def test_missing_token_parameter_is_an_invalid_request(server: LiveServer) -> None:
    response = server.client.post(
        "/introspect", data={"token_type_hint": "access_token"}, headers=server.basic("svc-basic")
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_active_dpop_token_shows_its_claims(server: LiveServer) -> None:
    token, holder = dpop_token(server, {"scope": "read", "resource": API})
    response = introspect(server, token)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == ACTIVE_MEMBERS
    claims = claims_of(token)
    assert body["active"] is True
    assert body["token_type"] == "DPoP"  # RFC 9449 §6.2
    assert body["cnf"] == {"jkt": holder.kid}
    assert body["scope"] == "read"
    assert body["client_id"] == body["sub"] == "svc-basic"
    assert body["aud"] == API
    assert body["iss"] == server.url
    for name in ("exp", "iat", "jti"):
        assert body[name] == claims[name]
    assert body["exp"] - body["iat"] == server.settings.access_token_lifetime


def test_token_for_several_audiences_lists_them_all(server: LiveServer) -> None:
    token, _ = dpop_token(server)
    body = introspect(server, token).json()
    assert body["active"] is True
    assert body["aud"] == [API, OTHER_API]
    assert body["scope"] == "read write"


def test_bearer_token_is_reported_as_bearer(server: LiveServer) -> None:
    issued = server.token(client_id="svc-bearer")
    assert issued.status_code == 200, issued.text
    body = introspect(server, issued.json()["access_token"]).json()
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    assert "cnf" not in body
    assert body["client_id"] == "svc-bearer"


@pytest.mark.parametrize(("forge", "_id"), INACTIVE_CASES, ids=[i for _, i in INACTIVE_CASES])
def test_untrustworthy_tokens_are_just_inactive(
    server: LiveServer, forge: Forgery, _id: str
) -> None:
    genuine, _ = dpop_token(server)
    response = introspect(server, forge(server, genuine))
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}
    assert response.headers["cache-control"] == "no-store"
    # The genuine token it was made from is still active: the forgery changed one thing only.
    assert introspect(server, genuine).json()["active"] is True


def test_genuine_claims_resigned_with_our_key_are_active(server: LiveServer) -> None:
    """The control for the forgeries above: re-signing alone does not make a token inactive."""
    genuine, _ = dpop_token(server)
    copy = resign(genuine, our_keys(server)["active"])
    assert copy != genuine  # ECDSA signatures are randomised
    body = introspect(server, copy).json()
    assert body["active"] is True
    assert body["jti"] == claims_of(genuine)["jti"]


def test_token_minted_by_another_deployment_is_inactive(server: LiveServer, tmp_path: Path) -> None:
    other = ServerFactory(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        issued = other.start().token(dpop_key=SigningKey.generate("ES256"))
    finally:
        other.stop_all()
    assert issued.status_code == 200, issued.text
    response = introspect(server, issued.json()["access_token"])
    assert response.json() == {"active": False}


@pytest.mark.parametrize(
    ("offset", "active"),
    [
        (0, True),
        (290, True),
        (300, False),
        (3600, False),
    ],
    ids=[
        "is active when just issued",
        "is active ten seconds before expiry",
        "is inactive at the second it expires",
        "is inactive an hour later",
    ],
)
def test_expiry(server: LiveServer, offset: float, active: bool) -> None:
    token, _ = dpop_token(server)
    server.clock.offset = offset
    body = introspect(server, token).json()
    assert body["active"] is active
    if not active:
        assert body == {"active": False}


@pytest.mark.parametrize(
    ("offset", "active"),
    [(-2, True), (-30, True), (-120, False)],
    ids=[
        "a token minted by an instance two seconds ahead is active",
        "a token minted by an instance half a minute ahead is active",
        "a token minted by an instance two minutes ahead is inactive",
    ],
)
def test_clock_skew_between_instances(server: LiveServer, offset: float, active: bool) -> None:
    # Instances share one database and one issuer but not one clock.  The token is minted now;
    # the introspecting instance's clock is behind, so to it the token's iat is in the future.
    token, _ = dpop_token(server)
    server.clock.offset = offset
    body = introspect(server, token).json()
    assert body["active"] is active
    if active:
        assert body["iat"] > int(server.clock())
    else:
        assert body == {"active": False}


def test_revoked_token_is_inactive(server: LiveServer) -> None:
    token, _ = dpop_token(server)
    assert introspect(server, token).json()["active"] is True
    revoked = server.client.post(
        "/revoke", data={"token": token}, headers=server.basic("svc-basic")
    )
    assert revoked.status_code == 200, revoked.text
    assert introspect(server, token).json() == {"active": False}
    assert introspect(server, token, caller="svc-basic").json() == {"active": False}


# --- who may see what ----------------------------------------------------------------------------


@pytest.fixture
def audience_server(server_factory: ServerFactory) -> LiveServer:
    """The standard clients plus two resource servers whose client_id is their audience URI."""
    extra = [
        {
            "client_id": uri,
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(secret),
            "grant_types": [],
        }
        for uri, secret in AUDIENCE_SECRETS.items()
    ]
    return server_factory.start({"clients": standard_clients() + extra})


@pytest.mark.parametrize(
    ("caller", "resource", "active"),
    [
        ("resource-server", None, True),
        ("svc-basic", None, True),
        (API, None, True),
        (OTHER_API, None, True),
        (API, API, True),
        (OTHER_API, API, False),
        ("svc-post", None, False),
        ("svc-bearer", API, False),
    ],
    ids=[
        "a client with can_introspect sees any token",
        "the client the token was issued to sees it",
        "a client named first among several audiences sees it",
        "a client named second among several audiences sees it",
        "the client named as the only audience sees it",
        "a resource server the token is not for sees nothing",
        "an unrelated client sees nothing",
        "another client sharing the token's audience sees nothing",
    ],
)
def test_who_may_introspect(
    audience_server: LiveServer, caller: str, resource: str | None, active: bool
) -> None:
    token, _ = dpop_token(audience_server, {"resource": resource} if resource else None)
    response = introspect(audience_server, token, caller=caller)
    assert response.status_code == 200, response.text
    if active:
        assert response.json()["active"] is True
        assert response.json()["jti"] == claims_of(token)["jti"]
    else:
        assert response.json() == {"active": False}


def test_agent_introspects_its_own_token_with_private_key_jwt(server: LiveServer) -> None:
    issued = server.token(client_id="agent-jwt", dpop_key=SigningKey.generate("ES256"))
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assertion = server.assertion(aud=server.settings.endpoint("/introspect"))
    response = server.client.post(
        "/introspect",
        data={
            "token": token,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == "agent-jwt"
