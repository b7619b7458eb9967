"""Token revocation (RFC 7009) over real HTTP: a client revokes its own tokens, nobody else's,
and anything Deputize cannot read gets the §2.2 answer (200, nothing done).

Whether a token is still active is asked of the introspection endpoint, as a resource server
would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest

from deputize.keys import SigningKey, parse

from support import JWT_BEARER, SECRETS, LiveServer


def dpop_token(server: LiveServer, client_id: str = "svc-basic") -> str:
    response = server.token(client_id=client_id, dpop_key=SigningKey.generate("ES256"))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def auth(server: LiveServer, caller: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and form fields that authenticate ``caller`` the way it is registered."""
    if caller == "svc-post":
        return {}, {"client_id": caller, "client_secret": SECRETS[caller]}
    if caller == "agent-jwt":
        assertion = server.assertion(aud=server.settings.endpoint("/revoke"))
        return {}, {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    return server.basic(caller), {}


def revoke(
    server: LiveServer, token: str, caller: str = "svc-basic", **extra: str
) -> httpx.Response:
    headers, form = auth(server, caller)
    return server.client.post("/revoke", data={"token": token, **form, **extra}, headers=headers)


def is_active(server: LiveServer, token: str) -> bool:
    response = server.client.post(
        "/introspect", data={"token": token}, headers=server.basic("resource-server")
    )
    assert response.status_code == 200, response.text
    active = response.json()["active"]
    assert isinstance(active, bool)
    return active


def test_client_revokes_its_own_token(server: LiveServer) -> None:
    token = dpop_token(server)
    sibling = dpop_token(server)
    assert is_active(server, token)
    response = revoke(server, token)
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert not is_active(server, token)
    # Only that token: another token of the same client is untouched.
    assert is_active(server, sibling)


@pytest.mark.parametrize(
    "caller",
    ["svc-post", "agent-jwt", "svc-bearer"],
    ids=[
        "a client_secret_post client revokes its own token",
        "a private_key_jwt agent revokes its own token",
        "a bearer client revokes its own bearer token",
    ],
)
def test_every_authentication_method_can_revoke(server: LiveServer, caller: str) -> None:
    if caller == "svc-bearer":
        issued = server.token(client_id=caller)
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
    else:
        token = dpop_token(server, caller)
    response = revoke(server, token, caller)
    assert response.status_code == 200, response.text
    assert not is_active(server, token)


@pytest.mark.parametrize(
    "hint",
    ["access_token", "refresh_token", "urn:example:made-up"],
    ids=[
        "the access_token hint is accepted",
        "a wrong refresh_token hint does not stop the revocation",
        "an unknown hint is ignored",
    ],
)
def test_token_type_hint_is_only_a_hint(server: LiveServer, hint: str) -> None:
    token = dpop_token(server)
    response = revoke(server, token, token_type_hint=hint)
    assert response.status_code == 200, response.text
    assert not is_active(server, token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def foreign_key_with_our_kid(genuine: str) -> str:
    header, payload, _ = genuine.split(".")
    signing_input = f"{header}.{payload}"
    return signing_input + "." + _b64(SigningKey.generate("ES256").sign(signing_input.encode()))


def alg_none(genuine: str) -> str:
    kid = parse(genuine, algorithms=["ES256"], typ="at+jwt").kid
    header = json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode()
    return f"{_b64(header)}.{genuine.split('.')[1]}."


@pytest.mark.parametrize(
    "fake",
    [lambda genuine: "definitely-not-a-token", foreign_key_with_our_kid, alg_none],
    ids=[
        "garbage is answered 200",
        "a copy signed by a foreign key under our kid is answered 200",
        "an unsigned alg none copy is answered 200",
    ],
)
def test_tokens_we_cannot_read_are_answered_200(
    server: LiveServer, fake: Callable[[str], str]
) -> None:
    genuine = dpop_token(server)
    response = revoke(server, fake(genuine))
    assert response.status_code == 200, response.text
    assert response.content == b""
    # Nothing was done to the genuine token the fake copied its claims (and jti) from.
    assert is_active(server, genuine)


@pytest.mark.parametrize(
    "caller",
    ["svc-post", "resource-server", "svc-bearer"],
    ids=[
        "an unrelated client may not revoke it",
        "even a client that may introspect any token may not revoke it",
        "a client sharing the token's audience may not revoke it",
    ],
)
def test_another_clients_token_is_refused_and_stays_active(server: LiveServer, caller: str) -> None:
    token = dpop_token(server)
    response = revoke(server, token, caller)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "unauthorized_client"
    assert response.headers["cache-control"] == "no-store"
    assert is_active(server, token)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"svc-basic:wrong-secret").decode()},
    ],
    ids=["refuses a caller that does not authenticate", "refuses a wrong client secret"],
)
def test_revocation_requires_client_authentication(
    server: LiveServer, headers: dict[str, str]
) -> None:
    token = dpop_token(server)
    response = server.client.post("/revoke", data={"token": token}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" in response.headers
    assert is_active(server, token)


def test_revoking_twice_is_fine(server: LiveServer) -> None:
    token = dpop_token(server)
    first = revoke(server, token)
    second = revoke(server, token)
    assert (first.status_code, second.status_code) == (200, 200)
    assert not is_active(server, token)


def test_revoking_an_expired_token_is_answered_200(server: LiveServer) -> None:
    token = dpop_token(server)
    server.clock.offset = server.settings.access_token_lifetime + 1
    response = revoke(server, token)
    assert response.status_code == 200, response.text
    assert not is_active(server, token)


def test_revocation_at_an_instance_whose_clock_is_behind(server: LiveServer) -> None:
    # Instances share the database but not the clock: this one runs 2 s behind the one that
    # minted the token, so the token's iat is in its future.  The revocation must still stick.
    token = dpop_token(server)
    server.clock.offset = -2
    response = revoke(server, token)
    assert response.status_code == 200, response.text
    server.clock.offset = 0
    assert not is_active(server, token)


def test_missing_token_parameter_is_an_invalid_request(server: LiveServer) -> None:
    response = server.client.post(
        "/revoke", data={"token_type_hint": "access_token"}, headers=server.basic("svc-basic")
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
