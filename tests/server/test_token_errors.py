"""The token endpoint refusing bad input over real HTTP (RFC 6749 §3.2, §5.2; RFC 8707 §2).

Every refusal is checked the same way: status, JSON ``error`` code, ``Cache-Control: no-store``
and a JSON body that says nothing about the server's internals.  ``svc-bearer`` is used where a
request must get through, because it needs no DPoP round trip.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import httpx
import pytest

from deputize.keys import KeySet, SigningKey, parse
from deputize.server.clients.secrets import hash_secret

from support import (
    API,
    OTHER_API,
    SECRETS,
    LiveServer,
    ServerFactory,
    assert_error,
    standard_clients,
    watch_server_log,
)

FORM = "application/x-www-form-urlencoded"
TokenForm = Mapping[str, str | Sequence[str]]


def bearer_form(**extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", **extra}


def raw_post(
    server: LiveServer,
    body: bytes,
    *,
    content_type: str | None = FORM,
    client_id: str = "svc-bearer",
) -> httpx.Response:
    headers = dict(server.basic(client_id))
    if content_type is not None:
        headers["Content-Type"] = content_type
    return server.client.post("/token", content=body, headers=headers)


def form_post(
    server: LiveServer,
    form: TokenForm,
    *,
    client_id: str = "svc-bearer",
    dpop_key: SigningKey | None = None,
) -> httpx.Response:
    headers = dict(server.basic(client_id))
    if dpop_key is not None:
        headers["DPoP"] = server.proof(dpop_key)
    return server.client.post("/token", data=form, headers=headers)


def verified_claims(server: LiveServer, token: str) -> dict[str, object]:
    keys = KeySet.from_jwks(server.client.get("/jwks").json())
    parsed = parse(token, algorithms=["ES256"], typ="at+jwt")
    key = keys.find(parsed)
    assert key is not None
    return dict(parsed.verify(key))


# --- media type and charset -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"grant_type": "client_credentials"}).encode(), "application/json"),
        (
            b'--xx\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\n'
            b"client_credentials\r\n--xx--\r\n",
            "multipart/form-data; boundary=xx",
        ),
        (b"grant_type=client_credentials", "text/plain"),
        (b"grant_type=client_credentials", None),
        (b"grant_type=client_credentials", "application/x-www-form-urlencoded-extra"),
        (b"grant_type=client_credentials", f"{FORM}; charset=iso-8859-1"),
        (b"grant_type=client_credentials", f"{FORM}; charset=utf-16"),
        (b"grant_type=client_credentials", f"{FORM}; charset=utf-8; boundary=x"),
    ],
    ids=[
        "refuses a JSON body",
        "refuses a multipart body",
        "refuses a text/plain body",
        "refuses a body without a content type",
        "refuses a media type that only starts like a form",
        "refuses a latin-1 charset",
        "refuses a utf-16 charset",
        "refuses extra media type parameters after the charset",
    ],
)
def test_refuses_bodies_that_are_not_utf8_forms(
    server: LiveServer, body: bytes, content_type: str | None
) -> None:
    assert_error(raw_post(server, body, content_type=content_type), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    [
        FORM,
        f"{FORM}; charset=utf-8",
        f"{FORM};charset=UTF-8",
        f'{FORM}; charset="utf-8"',
        "Application/X-WWW-Form-URLEncoded",
    ],
    ids=[
        "accepts the plain form media type",
        "accepts an explicit utf-8 charset",
        "accepts an upper-case charset without a space",
        "accepts a quoted charset",
        "accepts the media type in mixed case",
    ],
)
def test_accepts_form_media_type_spellings(server: LiveServer, content_type: str) -> None:
    response = raw_post(server, b"grant_type=client_credentials", content_type=content_type)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


# --- body size ------------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """A valid client_credentials form of exactly ``size`` bytes (padded with an unknown field)."""
    head = b"grant_type=client_credentials&pad="
    assert size > len(head)
    return head + b"x" * (size - len(head))


def test_body_at_the_limit_is_read(server: LiveServer) -> None:
    limit = server.settings.max_body_bytes
    response = raw_post(server, padded_body(limit))
    assert response.status_code == 200, response.text


def test_declared_body_over_the_limit_is_refused(server_factory: ServerFactory) -> None:
    server = server_factory.start({"http": {"max_body_bytes": 1024}})
    limit = server.settings.max_body_bytes
    assert limit == 1024
    response = raw_post(server, padded_body(limit + 1))
    assert response.request.headers["content-length"] == str(limit + 1)
    assert_error(response, 413, "invalid_request")


def test_streamed_body_over_the_limit_is_refused(server_factory: ServerFactory) -> None:
    server = server_factory.start({"http": {"max_body_bytes": 1024}})
    chunks_sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        body = padded_body(1024 + 200)
        for start in range(0, len(body), 100):
            chunks_sent.append(start)
            yield body[start : start + 100]

    headers = {**server.basic("svc-bearer"), "Content-Type": FORM}
    response = server.client.post("/token", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert chunks_sent  # the body really was streamed
    assert_error(response, 413, "invalid_request")


@pytest.mark.parametrize(
    ("path", "origin"),
    [("/token", None), ("/token", "https://app.example"), ("/introspect", None)],
    ids=["token served directly", "token through Starlette", "introspect"],
)
def test_client_hanging_up_mid_body_is_no_server_error(
    server: LiveServer, path: str, origin: str | None
) -> None:
    """A client that promises 1,000 bytes, sends 20 and hangs up leaves nobody to answer.  The
    server notes it and goes on: no ``unhandled error``, no traceback in the log."""
    with watch_server_log(logging.INFO) as watch:
        url = urlsplit(server.url)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: {FORM}\r\n"
            + (f"Origin: {origin}\r\n" if origin else "")
            + "Content-Length: 1000\r\n\r\n"
        )
        with socket.create_connection((url.hostname, url.port)) as sock:
            sock.sendall(head.encode() + b"grant_type=client_cr")
        assert watch.wait_for("went away"), "the server never noticed the client went away"
    assert not [r for r in watch.records if r.levelno >= logging.WARNING or r.exc_info]
    # And it still serves.
    response = server.client.post("/token", data=bearer_form(), headers=server.basic("svc-bearer"))
    assert response.status_code == 200


def test_streamed_body_under_the_limit_is_read(server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_"
        yield b"credentials&scope=read"

    headers = {**server.basic("svc-bearer"), "Content-Type": FORM}
    response = server.client.post("/token", content=chunks(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"


# --- encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&scope=\xff",
        b"grant_type=client_credentials&scope=%ff",
        b"grant_type=client_credentials&scope=%c0%af",
        b"grant_type=client_credentials&scope=%ed%a0%80",
        b"grant_type=client_credentials&sc\xe9pe=read",
        b"grant_type=client_credentials&scope=read%00",
        b"grant_type=client_credentials&sco%00pe=read",
        b"grant_type=client_credentials\x00&scope=read",
    ],
    ids=[
        "refuses a raw byte that is not UTF-8",
        "refuses a percent-encoded byte that is not UTF-8",
        "refuses an overlong UTF-8 encoding",
        "refuses an encoded UTF-16 surrogate",
        "refuses a parameter name that is not UTF-8",
        "refuses a NUL character in a value",
        "refuses a NUL character in a name",
        "refuses a raw NUL byte",
    ],
)
def test_refuses_bodies_that_do_not_decode(server: LiveServer, body: bytes) -> None:
    assert_error(raw_post(server, body), 400, "invalid_request")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"grant_type=client%zzcredentials", "unsupported_grant_type"),
        (b"grant_type=client_credentials&scope=re%2", "invalid_scope"),
        (b"grant_type=client_credentials&scope=%", "invalid_scope"),
    ],
    ids=[
        "takes a broken escape in grant_type literally and refuses the grant type",
        "takes a truncated escape in scope literally and refuses the scope",
        "takes a lone percent sign literally and refuses the scope",
    ],
)
def test_broken_percent_escapes_never_become_valid_values(
    server: LiveServer, body: bytes, error: str
) -> None:
    assert_error(raw_post(server, body), 400, error)


def test_plus_decodes_to_a_space(server: LiveServer) -> None:
    # "read+read" is "read read": one scope, named twice.
    response = raw_post(server, b"grant_type=client_credentials&scope=read+read")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"
    # "read read " ends in an empty scope-token: malformed, not trimmed.
    refused = raw_post(server, b"grant_type=client_credentials&scope=read+read+")
    assert_error(refused, 400, "invalid_scope")


# --- repeated and excess parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "client_id"),
    [
        ({"grant_type": ["client_credentials", "client_credentials"]}, "svc-bearer"),
        ({"grant_type": ["client_credentials", "password"]}, "svc-bearer"),
        (bearer_form() | {"scope": ["read", "read"]}, "svc-bearer"),
        (bearer_form() | {"client_id": ["svc-bearer", "svc-bearer"]}, "svc-bearer"),
        (bearer_form() | {"client_id": ["svc-bearer", "svc-basic"]}, "svc-bearer"),
    ],
    ids=[
        "refuses grant_type sent twice",
        "refuses grant_type sent twice with different values",
        "refuses scope sent twice",
        "refuses client_id sent twice",
        "refuses client_id sent twice with different values",
    ],
)
def test_refuses_repeated_parameters(server: LiveServer, form: TokenForm, client_id: str) -> None:
    body = assert_error(form_post(server, form, client_id=client_id), 400, "invalid_request")
    assert "repeated" in body["error_description"]


def test_refuses_repeated_client_secret(server: LiveServer) -> None:
    form = bearer_form() | {
        "client_id": "svc-post",
        "client_secret": [SECRETS["svc-post"], SECRETS["svc-post"]],
    }
    response = server.client.post("/token", data=form)
    assert_error(response, 400, "invalid_request")


def test_resource_may_be_repeated(server: LiveServer) -> None:
    holder = SigningKey.generate()
    form = bearer_form() | {"resource": [API, OTHER_API]}
    response = form_post(server, form, client_id="svc-basic", dpop_key=holder)
    assert response.status_code == 200, response.text
    claims = verified_claims(server, response.json()["access_token"])
    assert claims["aud"] == [API, OTHER_API]


def test_same_resource_twice_is_one_audience(server: LiveServer) -> None:
    response = form_post(server, bearer_form() | {"resource": [API, API]})
    assert response.status_code == 200, response.text
    assert verified_claims(server, response.json()["access_token"])["aud"] == API


def test_field_count_limit(server: LiveServer) -> None:
    allowed = "&".join(["grant_type=client_credentials"] + [f"f{i}=x" for i in range(63)])
    response = raw_post(server, allowed.encode())
    assert response.status_code == 200, response.text
    refused = raw_post(server, (allowed + "&f63=x").encode())
    assert_error(refused, 400, "invalid_request")


# --- grant type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"scope=read", b"grant_type=&scope=read", b"grant_type"],
    ids=[
        "refuses a request without grant_type",
        "treats an empty grant_type as missing",
        "treats a grant_type without a value as missing",
    ],
)
def test_missing_grant_type(server: LiveServer, body: bytes) -> None:
    response = raw_post(server, body)
    body_json = assert_error(response, 400, "invalid_request")
    assert "grant_type" in body_json["error_description"]


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:device_code",
        "CLIENT_CREDENTIALS",
        "client_credentials ",
    ],
    ids=[
        "refuses the password grant",
        "refuses the JWT bearer grant",
        "refuses the device code grant",
        "compares grant types case-sensitively",
        "does not trim grant types",
    ],
)
def test_unsupported_grant_type(server: LiveServer, grant_type: str) -> None:
    response = form_post(server, {"grant_type": grant_type})
    assert_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("grant_type", ["authorization_code", "refresh_token"])
def test_sign_in_grants_need_registration(server: LiveServer, grant_type: str) -> None:
    response = form_post(server, {"grant_type": grant_type})
    assert_error(response, 400, "unauthorized_client")


def test_client_without_the_grant_is_unauthorized(server: LiveServer) -> None:
    response = form_post(server, bearer_form(), client_id="resource-server")
    assert_error(response, 400, "unauthorized_client")


# --- methods and paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    ["GET", "PUT", "DELETE", "PATCH", "HEAD"],
    ids=[
        "refuses GET on the token endpoint",
        "refuses PUT on the token endpoint",
        "refuses DELETE on the token endpoint",
        "refuses PATCH on the token endpoint",
        "refuses HEAD on the token endpoint",
    ],
)
def test_token_endpoint_is_post_only(server: LiveServer, method: str) -> None:
    response = server.client.request(method, "/token", headers=server.basic("svc-bearer"))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["cache-control"] == "no-store"
    if method != "HEAD":
        assert_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nothing-here"), ("POST", "/token/extra"), ("POST", "/oauth/token")],
    ids=[
        "answers an unknown path with JSON",
        "answers a path below the token endpoint with JSON",
        "answers a conventional token path that is not ours with JSON",
    ],
)
def test_unknown_path_is_json_404(server: LiveServer, method: str, path: str) -> None:
    response = server.client.request(method, path, data=bearer_form())
    assert_error(response, 404, "not_found")


# --- scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "scope"),
    [
        ("svc-bearer", "write"),
        ("svc-bearer", "read write"),
        ("svc-bearer", "admin"),
        ("svc-bearer", "READ"),
        ("svc-post", "read write"),
    ],
    ids=[
        "refuses a scope the client lacks",
        "refuses a wider scope instead of narrowing it",
        "refuses an unknown scope",
        "compares scopes case-sensitively",
        "refuses escalation by a client_secret_post client",
    ],
)
def test_scope_escalation_is_refused(server: LiveServer, client_id: str, scope: str) -> None:
    form = bearer_form(scope=scope)
    if client_id == "svc-post":
        form |= {"client_id": "svc-post", "client_secret": SECRETS["svc-post"]}
        response = server.client.post(
            "/token", data=form, headers={"DPoP": server.proof(SigningKey.generate())}
        )
    else:
        response = form_post(server, form, client_id=client_id)
    assert_error(response, 400, "invalid_scope")


@pytest.mark.parametrize(
    "scope",
    ["read  read", " read", "read ", "read\tread", 'read"', "read\\", "read\x7f", "\u00a0read"],
    ids=[
        "refuses two spaces between scope tokens",
        "refuses a leading space",
        "refuses a trailing space",
        "refuses a tab as separator",
        "refuses a double quote",
        "refuses a backslash",
        "refuses a control character",
        "refuses a non-breaking space",
    ],
)
def test_malformed_scope_is_refused(server: LiveServer, scope: str) -> None:
    assert_error(form_post(server, bearer_form(scope=scope)), 400, "invalid_scope")


def test_repeated_scope_token_is_collapsed(server: LiveServer) -> None:
    response = form_post(server, bearer_form(scope="read read"))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"


def test_default_scope_and_audience(server: LiveServer) -> None:
    holder = SigningKey.generate()
    response = form_post(server, bearer_form(), client_id="svc-basic", dpop_key=holder)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"
    claims = verified_claims(server, response.json()["access_token"])
    assert claims["scope"] == "read write"
    assert claims["aud"] == [API, OTHER_API]


def test_empty_scope_counts_as_omitted(server: LiveServer) -> None:
    response = raw_post(server, b"grant_type=client_credentials&scope=")
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"


def test_client_without_audiences_gets_the_issuer(server_factory: ServerFactory) -> None:
    clients = [
        *standard_clients(),
        {
            "client_id": "no-audience",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret("no-audience-secret-0123456789abcdef"),
            "scopes": ["read"],
            "dpop_bound_access_tokens": False,
        },
    ]
    server = server_factory.start({"clients": clients})
    response = server.client.post(
        "/token",
        data=bearer_form(),
        headers=server.basic("no-audience", "no-audience-secret-0123456789abcdef"),
    )
    assert response.status_code == 200, response.text
    assert verified_claims(server, response.json()["access_token"])["aud"] == server.url
    refused = server.client.post(
        "/token",
        data=bearer_form(resource=server.url),
        headers=server.basic("no-audience", "no-audience-secret-0123456789abcdef"),
    )
    assert_error(refused, 400, "invalid_target")


# --- resource -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources",
    [
        ["https://evil.example.com"],
        [OTHER_API],
        [API + "/"],
        ["HTTPS://API.EXAMPLE.COM"],
        ["/api"],
        ["api.example.com"],
        [API + "#section"],
        [API + "#"],
        [API, "https://evil.example.com"],
        ["http://[::1"],
        ["https://[not-an-ip]/"],
    ],
    ids=[
        "refuses a resource the client may not use",
        "refuses another client's resource",
        "refuses a resource with an added trailing slash",
        "compares resources as exact strings",
        "refuses a relative resource",
        "refuses a resource without a scheme",
        "refuses a resource with a fragment",
        "refuses a resource with an empty fragment",
        "refuses the whole request when one of several resources is not allowed",
        "refuses a resource with a broken IPv6 literal",
        "refuses a resource with a bracketed host that is not an IP",
    ],
)
def test_resource_is_an_allowed_absolute_uri(server: LiveServer, resources: list[str]) -> None:
    response = form_post(server, bearer_form() | {"resource": resources})
    assert_error(response, 400, "invalid_target")


def test_resource_selects_one_audience(server: LiveServer) -> None:
    holder = SigningKey.generate()
    response = form_post(
        server, bearer_form(resource=OTHER_API), client_id="svc-basic", dpop_key=holder
    )
    assert response.status_code == 200, response.text
    assert verified_claims(server, response.json()["access_token"])["aud"] == OTHER_API


ELSEWHERE = "https://elsewhere.example"  # an origin no client registered: no CORS headers


@pytest.mark.parametrize(
    ("form", "secret"),
    [
        (bearer_form(), None),
        (bearer_form(scope="no-such-scope"), None),
        ({"grant_type": "no-such-grant"}, None),
        (bearer_form(), "wrong secret"),
    ],
    ids=["a token", "an invalid_scope refusal", "an unsupported grant", "a 401 challenge"],
)
def test_both_routes_to_the_token_endpoint_answer_alike(
    server: LiveServer, form: TokenForm, secret: str | None
) -> None:
    """``POST /token`` without an ``Origin`` skips Starlette's middleware and router
    (``app.DeputizeApp``); a browser's request, with one, goes through them.  Same answers."""
    headers = server.basic("svc-bearer", secret)
    direct = server.client.post("/token", data=form, headers=headers)
    routed = server.client.post("/token", data=form, headers={**headers, "Origin": ELSEWHERE})
    assert direct.status_code == routed.status_code
    for name in ("content-type", "cache-control", "pragma", "www-authenticate", "dpop-nonce"):
        assert direct.headers.get(name) == routed.headers.get(name), name
    assert "access-control-allow-origin" not in routed.headers
    if direct.status_code == 200:
        assert set(direct.json()) == set(routed.json())
        assert direct.json()["access_token"] != routed.json()["access_token"]
    else:
        assert direct.json() == routed.json()


@pytest.mark.parametrize("origin", [None, ELSEWHERE], ids=["served directly", "through Starlette"])
def test_an_unexpected_failure_is_a_bare_500(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, origin: str | None
) -> None:
    """A bug in a grant (simulated: the in-process server's grant raises) gives the client a
    JSON ``server_error`` and nothing of the exception; the traceback goes to the log."""
    from deputize.server.grants.client_credentials import ClientCredentialsGrant

    async def broken(self: object, request: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ClientCredentialsGrant, "handle", broken)
    headers = server.basic("svc-bearer")
    if origin is not None:
        headers["Origin"] = origin
    response = server.client.post("/token", data=bearer_form(), headers=headers)
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "error_description": "internal error"}
    assert "secret internal detail" not in response.text
