"""Client authentication at the token endpoint over real HTTP.

``client_secret_basic`` / ``client_secret_post`` (RFC 6749 §2.3.1) and ``private_key_jwt``
(RFC 7523 §2.2, §3), including a client whose keys live at a ``jwks_uri`` served by a small
HTTP server on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deputize.keys import SigningKey, sign
from deputize.server.clients.secrets import hash_secret

from support import (
    AGENT_KEY,
    API,
    JWT_BEARER,
    SECRETS,
    LiveServer,
    ServerFactory,
    assert_error,
    standard_clients,
)

Form = dict[str, str]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    def segment(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value, separators=(",", ":")).encode())

    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"


def signed(header: dict[str, Any], claims: dict[str, Any], key: SigningKey = AGENT_KEY) -> str:
    """A JWS with exactly ``header`` (``sign`` always adds ``typ``), signed by ``key``."""
    head_and_body = compact(header, claims, b"").rstrip(".")
    return f"{head_and_body}.{b64url(key.sign(head_and_body.encode()))}"


_HEAD = {"alg": "ES256", "typ": "JWT", "kid": AGENT_KEY.kid}


def basic_header(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def token_request(
    server: LiveServer,
    form: Form,
    *,
    headers: dict[str, str] | None = None,
    dpop: bool = True,
) -> httpx.Response:
    """POST a client_credentials request; with ``dpop`` a fresh proof with a current nonce."""
    all_headers = dict(headers or {})
    if dpop:
        all_headers["DPoP"] = server.proof(SigningKey.generate())
    return server.client.post(
        "/token", data={"grant_type": "client_credentials", **form}, headers=all_headers
    )


def assertion_form(assertion: str) -> Form:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}


def base_claims(server: LiveServer, client_id: str = "agent-jwt") -> dict[str, Any]:
    now = int(server.clock())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": server.url,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }


# --- client secrets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_headers", "form"),
    [
        (lambda s: s.basic("svc-basic", "wrong-secret-0123456789abcdefghijklmnop"), {}),
        (lambda s: s.basic("no-such-client", SECRETS["svc-basic"]), {}),
        (lambda s: s.basic("svc-basic", ""), {}),
        (lambda s: s.basic("svc-basic", SECRETS["svc-basic"] + "x"), {}),
        (lambda s: s.basic("svc-basic", SECRETS["svc-basic"][:-1]), {}),
        (lambda s: s.basic("SVC-BASIC", SECRETS["svc-basic"]), {}),
        (lambda s: {"Authorization": "Basic !!!not-base64!!!"}, {}),
        (lambda s: {"Authorization": "Basic c3ZjLWJhc2lj"}, {}),  # "svc-basic", no colon
        (lambda s: {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}, {}),
        (lambda s: {"Authorization": "Basic"}, {}),
        (lambda s: {"Authorization": "Bearer " + SECRETS["svc-basic"]}, {}),
        (lambda s: {}, {}),
        (lambda s: s.basic("svc-post"), {}),
        (lambda s: {}, {"client_id": "svc-basic", "client_secret": SECRETS["svc-basic"]}),
        (
            lambda s: {},
            {"client_id": "svc-post", "client_secret": "wrong-secret-0123456789abcdefgh"},
        ),
        (lambda s: s.basic("agent-jwt", "any-secret-0123456789abcdefghijklmnop"), {}),
        (lambda s: s.basic("resource-server", SECRETS["svc-basic"]), {}),
    ],
    ids=[
        "refuses basic with a wrong secret",
        "refuses basic for an unknown client",
        "refuses basic with an empty secret",
        "refuses a secret with a character appended",
        "refuses a secret with its last character cut off",
        "compares client ids case-sensitively",
        "refuses basic credentials that are not base64",
        "refuses basic credentials without a colon",
        "refuses basic credentials that are not UTF-8",
        "refuses a basic header without credentials",
        "refuses a non-basic authorization scheme",
        "refuses a request without any client authentication",
        "refuses basic for a client registered for client_secret_post",
        "refuses client_secret_post for a client registered for basic",
        "refuses client_secret_post with a wrong secret",
        "refuses a secret for a private_key_jwt client",
        "refuses one client's secret for another client",
    ],
)
def test_secret_authentication_failures(
    server: LiveServer,
    make_headers: Callable[[LiveServer], dict[str, str]],
    form: Form,
) -> None:
    response = token_request(server, form, headers=make_headers(server), dpop=False)
    assert_error(response, 401, "invalid_client")


def test_non_ascii_basic_credentials_are_refused(server: LiveServer) -> None:
    # Header bytes outside ASCII reach the application as latin-1 text.
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={b"Authorization": b"Basic \xe9\xe9\xe9\xe9"},
    )
    assert_error(response, 401, "invalid_client")


def test_unknown_client_and_wrong_secret_look_alike(server: LiveServer) -> None:
    wrong = token_request(server, {}, headers=server.basic("svc-basic", "x" * 40), dpop=False)
    unknown = token_request(server, {}, headers=server.basic("nobody", "x" * 40), dpop=False)
    assert assert_error(wrong, 401, "invalid_client") == assert_error(
        unknown, 401, "invalid_client"
    )
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


Credentials = Callable[[LiveServer], tuple[dict[str, str], Form]]


@pytest.mark.parametrize(
    "credentials",
    [
        lambda s: (s.basic("svc-basic"), {"client_secret": SECRETS["svc-basic"]}),
        lambda s: (s.basic("svc-basic"), {"client_id": "svc-basic", "client_secret": "x"}),
        lambda s: (s.basic("svc-basic"), assertion_form(s.assertion())),
        lambda s: (
            {},
            {"client_id": "svc-post", "client_secret": SECRETS["svc-post"]}
            | assertion_form(s.assertion()),
        ),
        lambda s: (s.basic("svc-basic"), {"client_id": "svc-post"}),
        lambda s: ({}, {"client_secret": SECRETS["svc-post"]}),
        lambda s: ({}, assertion_form(s.assertion()) | {"client_id": "svc-basic"}),
    ],
    ids=[
        "refuses basic and client_secret_post together",
        "refuses basic and client_secret_post together even with a client_id",
        "refuses basic and private_key_jwt together",
        "refuses client_secret_post and private_key_jwt together",
        "refuses a body client_id that differs from the basic one",
        "refuses client_secret_post without client_id",
        "refuses a body client_id that differs from the assertion's",
    ],
)
def test_ambiguous_client_authentication(server: LiveServer, credentials: Credentials) -> None:
    headers, form = credentials(server)
    response = token_request(server, form, headers=headers, dpop=False)
    assert_error(response, 400, "invalid_request")


def test_body_client_id_matching_basic_is_accepted(server: LiveServer) -> None:
    response = token_request(server, {"client_id": "svc-basic"}, headers=server.basic("svc-basic"))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"


# --- RFC 6749 §2.3.1: basic credentials are form-urlencoded first ----------------------------

SPECIAL_ID = "svc:special@tenant/a~b.c"
SPECIAL_SECRET = "p+ss:w%rd&x=y/ü é-0123456789abcdefghijklmnop"
PLUS_ID = "svc-plus"
PLUS_SECRET = "plus+secret+0123456789abcdefghijklmnop"
POST_ID = "post:special@tenant"


@pytest.fixture
def special_server(server_factory: ServerFactory) -> LiveServer:
    def client(client_id: str, secret: str, method: str) -> dict[str, Any]:
        return {
            "client_id": client_id,
            "token_endpoint_auth_method": method,
            "client_secret_hash": hash_secret(secret),
            "scopes": ["read"],
            "dpop_bound_access_tokens": False,
        }

    clients = [
        *standard_clients(),
        client(SPECIAL_ID, SPECIAL_SECRET, "client_secret_basic"),
        client(PLUS_ID, PLUS_SECRET, "client_secret_basic"),
        client(POST_ID, SPECIAL_SECRET, "client_secret_post"),
    ]
    return server_factory.start({"clients": clients})


def encoded(client_id: str, secret: str) -> bytes:
    return f"{quote_plus(client_id)}:{quote_plus(secret)}".encode("ascii")


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (encoded(SPECIAL_ID, SPECIAL_SECRET), True),
        (encoded(PLUS_ID, PLUS_SECRET), True),
        (f"{SPECIAL_ID}:{SPECIAL_SECRET}".encode(), False),
        (f"{PLUS_ID}:{PLUS_SECRET}".encode(), False),
        (
            f"{quote_plus(SPECIAL_ID)}:{quote_plus(SPECIAL_SECRET, encoding='latin-1')}".encode(),
            False,
        ),
    ],
    ids=[
        "accepts form-urlencoded id and secret with reserved characters",
        "accepts a form-urlencoded plus sign in the secret",
        "refuses an unencoded client id containing a colon",
        "decodes an unencoded plus sign as a space and so refuses it",
        "refuses a secret percent-encoded as latin-1 instead of UTF-8",
    ],
)
def test_basic_credentials_are_form_urlencoded(
    special_server: LiveServer, raw: bytes, accepted: bool
) -> None:
    response = token_request(special_server, {}, headers=basic_header(raw), dpop=False)
    if accepted:
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "Bearer"
    else:
        assert_error(response, 401, "invalid_client")


def test_post_credentials_with_reserved_characters(special_server: LiveServer) -> None:
    form = {"client_id": POST_ID, "client_secret": SPECIAL_SECRET}
    response = token_request(special_server, form, dpop=False)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


# --- private_key_jwt ------------------------------------------------------------------------

OTHER_KEY = SigningKey.generate("ES256")
AGENT_PUBLIC_PEM = AGENT_KEY.public.key.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def unsigned(server: LiveServer) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": AGENT_KEY.kid}
    return compact(header, base_claims(server), b"")


def hmac_with_public_pem(server: LiveServer) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": AGENT_KEY.kid}
    head_and_body = compact(header, base_claims(server), b"").rstrip(".")
    mac = hmac.new(AGENT_PUBLIC_PEM, head_and_body.encode(), hashlib.sha256).digest()
    return f"{head_and_body}.{b64url(mac)}"


def without(server: LiveServer, name: str) -> str:
    claims = base_claims(server)
    del claims[name]
    return sign(claims, AGENT_KEY, typ="JWT")


def tampered(server: LiveServer) -> str:
    header, _, signature = server.assertion().split(".")
    claims = base_claims(server) | {"scope": "admin"}
    body = b64url(json.dumps(claims).encode())
    return f"{header}.{body}.{signature}"


def es384_under_agent_kid(server: LiveServer) -> str:
    key = SigningKey.generate("ES384")
    return sign(base_claims(server), key, typ="JWT", headers={"kid": AGENT_KEY.kid})


@pytest.mark.parametrize(
    "make_assertion",
    [
        lambda s: s.assertion(lifetime=-60),
        lambda s: s.assertion(lifetime=3600),
        lambda s: s.assertion(lifetime=s.settings.client_assertion_max_lifetime + 60),
        lambda s: s.assertion(nbf=int(s.clock()) + 120),
        lambda s: s.assertion(iat=int(s.clock()) + 120),
        lambda s: s.assertion(exp="soon"),
        lambda s: s.assertion(exp=float("nan")),
        lambda s: s.assertion(exp=float("inf")),
        lambda s: s.assertion(exp=10**400),
        lambda s: s.assertion(nbf=-(10**400)),
        lambda s: s.assertion(iat=10**400),
        lambda s: s.assertion(aud="https://elsewhere.example.com"),
        lambda s: s.assertion(aud=s.url + "/"),
        lambda s: s.assertion(aud=s.url + "/introspect"),
        lambda s: s.assertion(aud=["https://elsewhere.example.com", "https://other.example.com"]),
        lambda s: s.assertion(aud=[]),
        lambda s: s.assertion(iss="svc-basic"),
        lambda s: without(s, "iss"),
        lambda s: without(s, "sub"),
        lambda s: without(s, "exp"),
        lambda s: without(s, "jti"),
        lambda s: sign(base_claims(s) | {"jti": ""}, AGENT_KEY, typ="JWT"),
        lambda s: s.assertion(jti="x" * 201),
        lambda s: signed(_HEAD, base_claims(s) | {"jti": "j\x00"}),
        lambda s: signed(_HEAD, base_claims(s) | {"iss": "agent\ud800", "sub": "agent\ud800"}),
        lambda s: s.assertion(client_id="no-such-client"),
        lambda s: s.assertion(client_id="svc-basic"),
        lambda s: s.assertion(key=OTHER_KEY),
        lambda s: sign(base_claims(s), OTHER_KEY, typ="JWT", headers={"kid": AGENT_KEY.kid}),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="JWT", headers={"kid": "unknown-kid"}),
        lambda s: sign(base_claims(s), OTHER_KEY, typ="JWT", include_kid=False),
        es384_under_agent_kid,
        unsigned,
        hmac_with_public_pem,
        tampered,
        lambda s: sign(base_claims(s), AGENT_KEY, typ="at+jwt"),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="application/at+jwt"),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="dpop+jwt"),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="JWT", headers={"crit": ["exp"]}),
        lambda s: signed({"alg": "ES256", "typ": None, "kid": AGENT_KEY.kid}, base_claims(s)),
        lambda s: signed({"alg": "ES256", "typ": 1, "kid": AGENT_KEY.kid}, base_claims(s)),
        lambda s: "not-a-jwt",
        lambda s: "a.b.c",
        lambda s: s.assertion() + "x",
    ],
    ids=[
        "refuses an expired assertion",
        "refuses an assertion valid for an hour",
        "refuses an assertion living longer than assertion_max_lifetime",
        "refuses an assertion that is not yet valid",
        "refuses an assertion issued in the future",
        "refuses an assertion whose exp is not a number",
        "refuses an assertion whose exp is NaN",
        "refuses an assertion whose exp is infinite",
        "refuses an exp too large for a float (no 500)",
        "refuses an nbf too small for a float (no 500)",
        "refuses an iat too large for a float (no 500)",
        "refuses an assertion for another audience",
        "refuses the issuer with a trailing slash as audience",
        "refuses another endpoint of ours as audience",
        "refuses an audience list that does not name us",
        "refuses an empty audience list",
        "refuses an assertion whose iss is not its sub",
        "refuses an assertion without iss",
        "refuses an assertion without sub",
        "refuses an assertion without exp",
        "refuses an assertion without jti",
        "refuses an assertion with an empty jti",
        "refuses an assertion with an overlong jti",
        "refuses a NUL in the jti",
        "refuses a client_id with a lone surrogate (no UTF-8 can hold it)",
        "refuses an assertion for an unknown client",
        "refuses an assertion for a secret-authenticated client",
        "refuses an assertion signed by an unregistered key",
        "refuses an unregistered key claiming the registered kid",
        "refuses an unknown kid",
        "refuses an unregistered key without a kid",
        "refuses an algorithm that does not fit the registered key",
        "refuses alg none",
        "refuses HS256 keyed with the public key PEM",
        "refuses an assertion whose claims were changed after signing",
        "refuses an access token used as an assertion",
        "refuses an access token typ in its long form",
        "refuses a DPoP proof used as an assertion",
        "refuses critical header parameters",
        "refuses a null typ",
        "refuses a typ that is not a string",
        "refuses garbage instead of a JWT",
        "refuses three segments of garbage",
        "refuses a corrupted signature",
    ],
)
def test_private_key_jwt_rejections(
    server: LiveServer, make_assertion: Callable[[LiveServer], str]
) -> None:
    response = token_request(server, assertion_form(make_assertion(server)), dpop=False)
    assert_error(response, 401, "invalid_client")


@pytest.mark.parametrize(
    "assertion_type",
    [
        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        "jwt-bearer",
        JWT_BEARER.upper(),
        None,
    ],
    ids=[
        "refuses the SAML assertion type",
        "refuses an abbreviated assertion type",
        "compares the assertion type case-sensitively",
        "refuses an assertion without client_assertion_type",
    ],
)
def test_wrong_client_assertion_type(server: LiveServer, assertion_type: str | None) -> None:
    form: Form = {"client_assertion": server.assertion()}
    if assertion_type is not None:
        form["client_assertion_type"] = assertion_type
    assert_error(token_request(server, form, dpop=False), 401, "invalid_client")


def test_assertion_type_without_assertion(server: LiveServer) -> None:
    response = token_request(server, {"client_assertion_type": JWT_BEARER}, dpop=False)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "make_assertion",
    [
        lambda s: s.assertion(),
        lambda s: s.assertion(aud=s.token_endpoint),
        lambda s: s.assertion(aud=[s.url]),
        lambda s: s.assertion(aud=["https://elsewhere.example.com", s.url]),
        lambda s: s.assertion(aud=[s.token_endpoint, s.url]),
        lambda s: s.assertion(lifetime=s.settings.client_assertion_max_lifetime),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="client-authentication+jwt"),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="application/JWT"),
        lambda s: sign(base_claims(s), AGENT_KEY, typ="JWT", include_kid=False),
        lambda s: signed({"alg": "ES256", "kid": AGENT_KEY.kid}, base_claims(s), AGENT_KEY),
    ],
    ids=[
        "accepts the issuer as audience",
        "accepts the token endpoint URL as audience",
        "accepts an audience list holding only the issuer",
        "accepts an audience list that names us among others",
        "accepts an audience list naming both issuer and token endpoint",
        "accepts an assertion living exactly assertion_max_lifetime",
        "accepts the client-authentication+jwt typ",
        "accepts the JWT typ in its long form",
        "accepts an assertion without a kid when one key fits",
        "accepts an assertion without typ",
    ],
)
def test_private_key_jwt_accepted(
    server: LiveServer, make_assertion: Callable[[LiveServer], str]
) -> None:
    response = token_request(server, assertion_form(make_assertion(server)))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"


def test_assertion_is_single_use(server: LiveServer) -> None:
    assertion = server.assertion()
    first = token_request(server, assertion_form(assertion))
    assert first.status_code == 200, first.text
    body = assert_error(token_request(server, assertion_form(assertion)), 401, "invalid_client")
    assert "already been used" in body["error_description"]


def test_jti_is_single_use_across_assertions(server: LiveServer) -> None:
    jti = secrets.token_urlsafe(12)
    first = token_request(server, assertion_form(server.assertion(jti=jti)))
    assert first.status_code == 200, first.text
    again = server.assertion(jti=jti, lifetime=120)
    assert_error(token_request(server, assertion_form(again)), 401, "invalid_client")


def test_jti_of_one_client_does_not_block_another(server_factory: ServerFactory) -> None:
    second_key = SigningKey.generate("EdDSA")
    clients = [
        *standard_clients(),
        {
            "client_id": "agent-two",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [second_key.public_jwk()]},
            "scopes": ["read"],
        },
    ]
    server = server_factory.start({"clients": clients})
    jti = secrets.token_urlsafe(12)
    first = token_request(server, assertion_form(server.assertion(jti=jti)))
    assert first.status_code == 200, first.text
    other = server.assertion("agent-two", second_key, jti=jti)
    response = token_request(server, assertion_form(other))
    assert response.status_code == 200, response.text


# --- jwks_uri clients -----------------------------------------------------------------------


class JWKSServer:
    """A JWKS endpoint on loopback, in a thread; counts fetches.  Its socket listens from
    construction, so a fetch made before the thread runs waits in the backlog."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.body: bytes | None = None
        self.status = 200
        self.fetches = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.fetches += 1
                    status, body = owner.status, owner.body
                    if body is None:
                        body = json.dumps({"keys": [k.public_jwk() for k in owner.keys]}).encode()
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", owner.url)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    served = JWKSServer()
    try:
        yield served
    finally:
        served.close()


def remote_client_server(factory: ServerFactory, jwks: JWKSServer) -> LiveServer:
    clients = [
        *standard_clients(),
        {
            "client_id": "agent-remote",
            "agent": True,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": jwks.url,
            "scopes": ["read"],
            "audiences": [API],
        },
    ]
    return factory.start({"clients": clients})


def test_jwks_uri_key_rotation(server_factory: ServerFactory, jwks_server: JWKSServer) -> None:
    old, new = SigningKey.generate("ES256"), SigningKey.generate("EdDSA")
    jwks_server.keys = [old]
    server = remote_client_server(server_factory, jwks_server)

    def attempt(key: SigningKey) -> httpx.Response:
        return token_request(server, assertion_form(server.assertion("agent-remote", key)))

    first = attempt(old)
    assert first.status_code == 200, first.text
    assert jwks_server.fetches == 1
    assert attempt(old).status_code == 200
    assert jwks_server.fetches == 1  # served from the cache

    # The client rotates.  Right after a fetch an unknown kid does not trigger another one
    # (a stream of made-up kids must not become a stream of outbound requests) ...
    jwks_server.keys = [new]
    assert_error(attempt(new), 401, "invalid_client")
    assert jwks_server.fetches == 1
    # ... but once the refetch interval has passed, the unknown kid refetches and succeeds.
    server.clock.offset += 31
    rotated = attempt(new)
    assert rotated.status_code == 200, rotated.text
    assert jwks_server.fetches == 2
    # The retired key is gone from the refreshed set.
    assert_error(attempt(old), 401, "invalid_client")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"error": "oops"}'),
        (404, b"not found"),
        (302, b""),
        (200, b"<html>not json</html>"),
        (200, b'{"keys": "none"}'),
        (200, json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}).encode()),
        (200, b'{"keys": []}'),
        (200, b" " * (64 * 1024 + 1)),
    ],
    ids=[
        "refuses the client when its jwks_uri fails",
        "refuses the client when its jwks_uri is missing",
        "does not follow a redirect from the jwks_uri",
        "refuses a jwks_uri document that is not JSON",
        "refuses a jwks_uri document without a key list",
        "refuses a jwks_uri document with an invalid key",
        "refuses the client when its jwks_uri lists no key",
        "refuses a jwks_uri document larger than 64 KiB",
    ],
)
def test_unusable_jwks_uri(
    server_factory: ServerFactory, jwks_server: JWKSServer, status: int, body: bytes
) -> None:
    key = SigningKey.generate()
    jwks_server.status, jwks_server.body = status, body
    server = remote_client_server(server_factory, jwks_server)
    response = token_request(server, assertion_form(server.assertion("agent-remote", key)))
    assert_error(response, 401, "invalid_client")
    assert jwks_server.fetches >= 1


def test_jwks_uri_with_private_key_material_is_refused(
    server_factory: ServerFactory, jwks_server: JWKSServer
) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey(private, "ES256")
    d = b64url(private.private_numbers().private_value.to_bytes(32, "big"))
    jwks_server.body = json.dumps({"keys": [key.public_jwk() | {"d": d}]}).encode()
    server = remote_client_server(server_factory, jwks_server)
    response = token_request(server, assertion_form(server.assertion("agent-remote", key)))
    assert_error(response, 401, "invalid_client")


# --- the replay cache key -------------------------------------------------------------------

LONG_ID = "agent-" + "l" * 122  # the longest client_id the configuration allows (128)


@pytest.fixture
def colon_server(server_factory: ServerFactory) -> LiveServer:
    def agent(client_id: str) -> dict[str, Any]:
        return {
            "client_id": client_id,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [AGENT_KEY.public_jwk()]},
            "scopes": ["read"],
        }

    return server_factory.start(
        {"clients": [*standard_clients(), agent("agent"), agent("agent:x"), agent(LONG_ID)]}
    )


def test_jti_of_a_client_named_like_a_prefix_does_not_collide(colon_server: LiveServer) -> None:
    # "agent" with jti "x:123" and "agent:x" with jti "123" are different assertions.
    first = colon_server.assertion("agent", jti="x:123")
    assert token_request(colon_server, assertion_form(first)).status_code == 200
    second = colon_server.assertion("agent:x", jti="123")
    response = token_request(colon_server, assertion_form(second))
    assert response.status_code == 200, response.text


def test_longest_client_id_with_longest_jti(colon_server: LiveServer) -> None:
    assertion = colon_server.assertion(LONG_ID, jti="j" * 200)
    response = token_request(colon_server, assertion_form(assertion))
    assert response.status_code == 200, response.text
    replayed = token_request(colon_server, assertion_form(assertion))
    assert_error(replayed, 401, "invalid_client")


def test_assertion_replay_keys_never_change() -> None:
    """The replay cache key of a client assertion is a hash of ``json.dumps([client_id,
    jti])``; a faster spelling must give the same keys, or an assertion used just before an
    upgrade could be used again just after it."""
    import base64
    import hashlib
    import json

    from deputize.server.clients.auth import _replay_key

    def reference(client_id: str, jti: str) -> str:
        digest = hashlib.sha256(json.dumps([client_id, jti]).encode("utf-8")).digest()
        return "assertion:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    samples = ["agent", "a:b", 'q"uote', "back\\slash", "new\nline", "ünïcode ✓", "\x00\x1f\x7f"]
    samples += ["\ud800", "x" * 200, ""]
    for client_id in samples:
        for jti in samples:
            assert _replay_key(client_id, jti) == reference(client_id, jti)


@pytest.mark.parametrize("alg", ['a"b', "a\\b", "\u20ac256", "A" * 60], ids=[
    "a quote", "a backslash", "non-ASCII", "long (cut)"])  # fmt: skip
def test_a_refusal_quoting_the_request_keeps_to_rfc_6749s_characters(
    server: LiveServer, alg: str
) -> None:
    """The refusal names the assertion's ``alg``; RFC 6749 §5.2 allows only %x20-21 / %x23-5B /
    %x5D-7E in ``error_description``.  The raw value used to be sent, quote, backslash and
    non-ASCII alike (and "…" where it was cut)."""
    assertion = compact({"alg": alg, "typ": "JWT", "kid": AGENT_KEY.kid}, base_claims(server),
                        b"sig")  # fmt: skip
    response = token_request(server, assertion_form(assertion), dpop=False)
    assert_error(response, 401, "invalid_client")
    description = response.json()["error_description"]
    assert "alg" in description
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description
