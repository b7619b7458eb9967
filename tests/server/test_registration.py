"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592) over real HTTP,
on SQLite and PostgreSQL: every refusal, the policy, the audit trail, and a registered client
signing a person in through /authorize and /token with PKCE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from delegation_support import DOCS, claims_of, introspect
from signin_support import Browser, auth_params, obtain_code, pkce, run_db, start
from sqlalchemy import select

from deputize.keys import SigningKey
from deputize.server import cli
from deputize.server.configuration.registration import token_hash
from deputize.server.settings import load_settings
from deputize.server.storage import audit
from deputize.server.storage.tables import audit_log, clients, registrations

from support import LiveServer, ServerFactory

REDIRECT = "http://localhost:33418/callback"
OPEN = {"mode": "open"}


def app_metadata(**extra: Any) -> dict[str, Any]:
    """What an MCP-style native app sends: a public client on a loopback redirect."""
    return {
        "client_name": "Notes app",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        **extra,
    }


def register(server: LiveServer, body: Any, **headers: str) -> httpx.Response:
    return server.client.post("/register", json=body, headers=headers)


def assert_registration_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(
        server_factory, registration={**OPEN, "allowed_scopes": ["docs:read"], "audiences": [DOCS]}
    )


def sign_in(
    server: LiveServer, browser: Browser, client_id: str, key: SigningKey | None, **resource: str
) -> httpx.Response:
    """/authorize (sign-in, consent) then /token with PKCE, as ``client_id``."""
    verifier, challenge = pkce()
    params = auth_params(client_id, redirect_uri=REDIRECT, scope="openid docs:read",
                         challenge=challenge, **resource)  # fmt: skip
    code = obtain_code(browser, params)["code"]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": REDIRECT, "client_id": client_id}  # fmt: skip
    headers = {"DPoP": server.proof(key)} if key is not None else {}
    return server.client.post("/token", data=form, headers=headers)


# --- registration and sign-in ---------------------------------------------------------------


def test_metadata_advertises_registration_only_when_on(server_factory: ServerFactory) -> None:
    on = server_factory.start({"registration": OPEN})
    assert (
        on.client.get("/.well-known/oauth-authorization-server").json()["registration_endpoint"]
        == on.url + "/register"
    )
    off = server_factory.start()
    assert (
        "registration_endpoint"
        not in off.client.get("/.well-known/oauth-authorization-server").json()
    )
    response = register(off, app_metadata())
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_register_returns_the_client_and_its_credentials(server: LiveServer) -> None:
    response = register(server, app_metadata(scope="openid docs:read", software_id="notes"))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["redirect_uris"] == [REDIRECT]
    assert body["token_endpoint_auth_method"] == "none" and "client_secret" not in body
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["scope"] == "openid docs:read" and body["software_id"] == "notes"
    assert body["dpop_bound_access_tokens"] is True  # the policy does not allow bearer
    assert body["registration_client_uri"] == f"{server.url}/register/{body['client_id']}"
    assert body["registration_access_token"].startswith("dzreg_")
    assert isinstance(body["client_id_issued_at"], int)

    async def rows(conn: Any) -> Any:
        reg = (await conn.execute(select(registrations))).one()
        events = (await conn.execute(select(audit_log.c.event, audit_log.c.client_id))).all()
        return reg, events

    reg, events = run_db(server, rows)
    # Stored hashed, never as issued.
    assert reg.token_hash == token_hash(body["registration_access_token"])
    assert (audit.CLIENT_REGISTERED, body["client_id"]) in [tuple(e) for e in events]


def test_a_registered_public_client_signs_in_with_pkce_and_dpop(
    server: LiveServer, browser: Browser
) -> None:
    registration = register(server, app_metadata(scope="docs:read")).json()
    client_id = registration["client_id"]
    refused = sign_in(server, browser, client_id, None)
    assert_registration_error(refused, 400, "invalid_request")
    assert "DPoP" in refused.json()["error_description"]
    response = sign_in(server, browser, client_id, SigningKey.generate("ES256"), resource=DOCS)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    claims = claims_of(response.json()["access_token"])
    assert claims["aud"] == DOCS and claims["client_id"] == client_id and "act" not in claims
    assert introspect(server, response.json()["access_token"])["active"] is True
    # RFC 7592 §2.3: deleting the client revokes what it was issued.
    server.client.delete(registration["registration_client_uri"],
                         headers=bearer(registration["registration_access_token"]))  # fmt: skip
    assert introspect(server, response.json()["access_token"])["active"] is False


def test_bearer_for_registered_public_clients_only_when_allowed(
    server_factory: ServerFactory,
) -> None:
    server = start(
        server_factory,
        registration={**OPEN, "allowed_scopes": ["docs:read"],
                      "allow_bearer_for_public_clients": True},
    )  # fmt: skip
    browser = Browser(server)
    try:
        body = register(server, app_metadata(scope="docs:read")).json()
        assert body["dpop_bound_access_tokens"] is False
        plain = sign_in(server, browser, body["client_id"], None)
        assert plain.status_code == 200, plain.text
        assert plain.json()["token_type"] == "Bearer"
        bound = sign_in(server, browser, body["client_id"], SigningKey.generate("ES256"))
        assert bound.json()["token_type"] == "DPoP"  # a client that sends DPoP is bound
        # dpop_bound_access_tokens: true forces DPoP for that client.
        forced = register(
            server, app_metadata(scope="docs:read", dpop_bound_access_tokens=True)
        ).json()
        assert forced["dpop_bound_access_tokens"] is True
        refused = sign_in(server, browser, forced["client_id"], None)
        assert_registration_error(refused, 400, "invalid_request")
        # A configured public client keeps DPoP required.
        code_verifier, challenge = pkce()
        params = auth_params("spa", redirect_uri="http://127.0.0.1:9/spa", scope="docs:read",
                             challenge=challenge)  # fmt: skip
        code = obtain_code(browser, params)["code"]
        spa = server.client.post("/token", data={
            "grant_type": "authorization_code", "code": code, "code_verifier": code_verifier,
            "redirect_uri": "http://127.0.0.1:9/spa", "client_id": "spa"})  # fmt: skip
        assert_registration_error(spa, 400, "invalid_request")
    finally:
        browser.close()


def test_a_confidential_registration_gets_a_secret_shown_once(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory, registration={
        **OPEN, "allowed_grant_types": ["client_credentials"]})  # fmt: skip
    body = register(server, {"grant_types": ["client_credentials"]}).json()
    assert body["token_endpoint_auth_method"] == "client_secret_basic"  # RFC 7591 §2 default
    assert body["client_secret_expires_at"] == 0 and body["response_types"] == []
    key = SigningKey.generate("ES256")
    headers = {**server.basic(body["client_id"], body["client_secret"]), "DPoP": server.proof(key)}
    ok = server.client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert ok.status_code == 200, ok.text
    row = run_db(server, lambda conn: conn.execute(select(clients.c.secret_hash).where(
        clients.c.client_id == body["client_id"])))  # fmt: skip
    assert row.scalar_one() == token_hash(body["client_secret"])
    read = server.client.get(body["registration_client_uri"],
                             headers=bearer(body["registration_access_token"]))  # fmt: skip
    assert read.status_code == 200 and "client_secret" not in read.json()


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (app_metadata(redirect_uris=["http://example.com/cb"]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris=["https://app.example/cb#x"]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris=["/relative"]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris=["javascript:alert(1)"]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris=["myapp:/cb"]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris=["http://[::1/cb"]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris=[]), "invalid_redirect_uri"),
        (app_metadata(redirect_uris="https://app.example/cb"), "invalid_client_metadata"),
        (app_metadata(grant_types=["client_credentials"]), "invalid_client_metadata"),
        (app_metadata(grant_types=["urn:ietf:params:oauth:grant-type:token-exchange"]),
         "invalid_client_metadata"),
        (app_metadata(scope="docs:write"), "invalid_client_metadata"),
        (app_metadata(response_types=["token"]), "invalid_client_metadata"),
        (app_metadata(token_endpoint_auth_method="tls_client_auth"), "invalid_client_metadata"),
        (app_metadata(jwks={"keys": []}), "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["authorization_code"],
          "redirect_uris": [REDIRECT], "jwks_uri": "https://10.0.0.1/jwks"},
         "invalid_client_metadata"),
        (app_metadata(dpop_bound_access_tokens="yes"), "invalid_client_metadata"),
        (app_metadata(client_uri="http://example.com"), "invalid_client_metadata"),
        (app_metadata(client_name="x\x00"), "invalid_client_metadata"),
        (app_metadata(software_statement="eyJ.e30.sig"), "invalid_software_statement"),
        (["not", "an", "object"], "invalid_client_metadata"),
        ("a string", "invalid_client_metadata"),
        (42, "invalid_client_metadata"),
    ],
    ids=[
        "refuses http on a non-loopback host", "refuses a fragment", "refuses a relative URI",
        "refuses javascript:", "refuses a custom scheme that is not a reverse domain",
        "refuses an unparseable URI", "refuses the code grant without redirect URIs",
        "refuses redirect_uris that is not a list", "refuses a grant type the policy omits",
        "refuses token exchange", "refuses a scope the policy omits",
        "refuses an implicit response type", "refuses an unknown auth method",
        "refuses keys for a public client",
        "refuses jwks_uri (server-side fetches)", "refuses a non-boolean dpop_bound_access_tokens",
        "refuses a plain-http client_uri", "refuses NUL in a string",
        "refuses software statements", "refuses a JSON array", "refuses a JSON string",
        "refuses a JSON number",
    ],
)  # fmt: skip
def test_bad_registrations_are_refused(server: LiveServer, body: Any, error: str) -> None:
    assert_registration_error(register(server, body), 400, error)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"{not json", "application/json"), (b'{"a": 1, "a": 2}', "application/json"),
     (b'{"a": NaN}', "application/json"), (b"[" * 5000 + b"]" * 5000, "application/json"),
     (b"\xff\xfe", "application/json"), (json.dumps(app_metadata()).encode(), "text/plain")],
    ids=["malformed JSON", "a repeated member", "NaN", "nesting too deep", "not UTF-8",
         "the wrong content type"],
)  # fmt: skip
def test_bodies_that_are_not_json_objects_are_refused(
    server: LiveServer, content: bytes, content_type: str
) -> None:
    response = server.client.post(
        "/register", content=content, headers={"Content-Type": content_type}
    )
    assert_registration_error(response, 400, "invalid_client_metadata")


def test_a_huge_body_is_refused_unread(server: LiveServer) -> None:
    body = app_metadata(client_name="x" * 100_000)
    response = register(server, body)
    assert response.status_code == 413 and response.json()["error"] == "invalid_request"


def test_auth_methods_the_policy_omits_are_refused(server_factory: ServerFactory) -> None:
    server = start(server_factory, registration={**OPEN, "allowed_auth_methods": ["none"]})
    response = register(server, app_metadata(token_endpoint_auth_method="client_secret_post"))
    assert_registration_error(response, 400, "invalid_client_metadata")
    assert register(server, app_metadata()).status_code == 201


def test_initial_access_token_mode(server_factory: ServerFactory) -> None:
    token = "operator-handed-token-0123456789abcdefgh"
    server = start(server_factory, registration={
        "mode": "initial_access_token", "initial_access_tokens": [token_hash(token)]})  # fmt: skip
    for headers in ({}, bearer("wrong"), bearer(token + "x"), {"Authorization": "Basic " + token}):
        response = register(server, app_metadata(), **headers)
        assert_registration_error(response, 401, "invalid_token")
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert register(server, app_metadata(), **bearer(token)).status_code == 201


def test_the_rate_limit_per_source_answers_429(server_factory: ServerFactory) -> None:
    server = start(server_factory, registration={**OPEN, "rate_limit": 2})
    assert register(server, app_metadata()).status_code == 201
    assert register(server, "bad").status_code == 400  # every request counts
    response = register(server, app_metadata())
    assert_registration_error(response, 429, "too_many_requests")
    assert 1 <= int(response.headers["retry-after"]) <= 60


# --- RFC 7592: read, update, delete -------------------------------------------------------


def test_read_update_and_delete_with_the_registration_access_token(server: LiveServer) -> None:
    first = register(server, app_metadata()).json()
    other = register(server, app_metadata()).json()
    uri, token = first["registration_client_uri"], first["registration_access_token"]
    read = server.client.get(uri, headers=bearer(token))
    assert read.status_code == 200 and read.json()["client_id"] == first["client_id"]
    for headers in ({}, bearer("dzreg_wrong"), bearer(other["registration_access_token"])):
        for method in ("GET", "DELETE"):
            response = server.client.request(method, uri, headers=headers)
            assert_registration_error(response, 401, "invalid_token")
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # Update: full replacement; client_id must match; server fields are not the client's.
    new = {**app_metadata(client_name="Renamed"), "client_id": first["client_id"]}
    for bad in (
        {**new, "client_id": other["client_id"]},
        {**new, "client_id": None},
        {**new, "registration_access_token": token},
        {**new, "client_secret": "guess"},
    ):
        response = server.client.put(uri, json=bad, headers=bearer(token))
        assert_registration_error(response, 400, "invalid_client_metadata")
    updated = server.client.put(uri, json=new, headers=bearer(token))
    assert updated.status_code == 200, updated.text
    rotated = updated.json()["registration_access_token"]
    assert rotated != token and updated.json()["client_name"] == "Renamed"
    assert_registration_error(server.client.get(uri, headers=bearer(token)), 401, "invalid_token")
    assert server.client.get(uri, headers=bearer(rotated)).json()["client_name"] == "Renamed"
    # Delete: 204, then the client no longer exists: 401, and /authorize does not know it.
    deleted = server.client.delete(uri, headers=bearer(rotated))
    assert deleted.status_code == 204 and deleted.content == b""
    assert_registration_error(server.client.get(uri, headers=bearer(rotated)), 401, "invalid_token")
    page = server.client.get("/authorize", params=auth_params(
        first["client_id"], redirect_uri=REDIRECT))  # fmt: skip
    assert page.status_code == 400
    events = run_db(server, lambda conn: conn.execute(
        select(audit_log.c.event).where(audit_log.c.client_id == first["client_id"])
        .order_by(audit_log.c.id)))  # fmt: skip
    assert [e for (e,) in events.all()] == [
        audit.CLIENT_REGISTERED,
        audit.CLIENT_UPDATED,
        audit.CLIENT_DELETED,
        audit.TOKEN_REVOKED,
    ]


def test_registrations_never_used_expire(server_factory: ServerFactory) -> None:
    server = start(server_factory, registration={**OPEN, "unused_expiry": 3600})
    stale = register(server, app_metadata()).json()
    server.clock.offset = 3601
    register(server, app_metadata())  # sweeps the stale one
    response = server.client.get(
        stale["registration_client_uri"], headers=bearer(stale["registration_access_token"])
    )
    assert_registration_error(response, 401, "invalid_token")
    rows = run_db(server, lambda conn: conn.execute(select(audit_log.c.reason).where(
        audit_log.c.client_id == stale["client_id"],
        audit_log.c.event == audit.CLIENT_DELETED)))  # fmt: skip
    assert rows.scalar_one() == "unused"


# --- the MCP Python SDK's own registration request ----------------------------------------


@pytest.mark.parametrize("method", ["none", None], ids=["public client", "method left out"])
def test_the_mcp_sdk_registration_request_is_accepted(
    server_factory: ServerFactory, method: str | None
) -> None:
    """The request the SDK's ``OAuthClientProvider`` builds (``create_client_registration_
    request``) from ``OAuthClientMetadata``, sent as it is, and its response read back by the
    SDK's own ``handle_registration_response`` and ``check_registration_usable``."""
    import asyncio

    httpx2 = pytest.importorskip("httpx2")
    from mcp.client.auth.oauth2 import check_registration_usable
    from mcp.client.auth.utils import (
        create_client_registration_request,
        handle_registration_response,
    )
    from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata
    from pydantic import AnyUrl

    server = server_factory.start(
        {"registration": {**OPEN, "allow_bearer_for_public_clients": True}}
    )
    as_metadata = OAuthMetadata.model_validate(
        server.client.get("/.well-known/oauth-authorization-server").json()
    )
    client_metadata = OAuthClientMetadata(
        client_name="MCP client",
        redirect_uris=[AnyUrl("http://localhost:3030/callback")],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=method,  # type: ignore[arg-type]
    )
    request = create_client_registration_request(as_metadata, client_metadata, server.url)
    assert str(request.url) == server.url + "/register"

    async def send() -> Any:
        async with httpx2.AsyncClient() as http:
            response = await http.send(request)
            info = await handle_registration_response(response)
            check_registration_usable(info)
            return response.status_code, info

    status, info = asyncio.run(send())
    assert status == 201
    assert info.client_id and info.redirect_uris == client_metadata.redirect_uris
    if method == "none":
        assert info.client_secret is None and info.token_endpoint_auth_method == "none"
    else:  # RFC 7591 §2's default: client_secret_basic, with a secret the SDK then sends
        assert info.client_secret and info.token_endpoint_auth_method == "client_secret_basic"


# --- the starter configuration ------------------------------------------------------------


@pytest.mark.usefixtures("no_deputize_environment")
@pytest.mark.parametrize(
    ("issuer", "mode", "bearer"),
    [(None, "open", True), ("http://localhost:9000", "open", True),
     ("https://as.example.com", "off", False)],
    ids=["the default loopback issuer opens registration",
         "a localhost issuer opens registration", "a public issuer keeps it off"],
)  # fmt: skip
def test_init_opens_registration_only_for_a_loopback_issuer(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    issuer: str | None,
    mode: str,
    bearer: bool,
) -> None:
    target = tmp_path / "deputize.yaml"
    assert (
        cli.main(["init", "--output", str(target), *(["--issuer", issuer] if issuer else [])]) == 0
    )
    policy = load_settings(target, env={}).registration
    assert (policy.mode, policy.allow_bearer_for_public_clients) == (mode, bearer)
    capsys.readouterr()
    assert cli.main(["check-config", str(target)]) == 0
    assert f"registration      {mode}" in capsys.readouterr().out


def test_init_names_the_mcp_server_the_sdk_will_ask_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "deputize.yaml"
    resource = "http://127.0.0.1:8001/mcp"
    argv = ["init", "--output", str(target), "--resource", resource, "--scope", "docs:read"]
    assert cli.main(argv) == 0
    policy = load_settings(target, env={}).registration
    assert policy.audiences == (resource,) and policy.allowed_scopes == ("docs:read",)
    capsys.readouterr()
    assert cli.main(["init", "--output", str(target), "--force", "--resource", "mcp"]) == 2
    assert "--resource: 'mcp' is not an absolute URL" in capsys.readouterr().err


def test_a_bare_yaml_off_means_off(tmp_path: Path) -> None:
    path = tmp_path / "deputize.yaml"
    path.write_text("issuer: https://as.example.com\nregistration:\n  mode: off\n")
    assert load_settings(path, env={}).registration.mode == "off"


def test_the_rate_limit_window_slides_and_its_memory_is_bounded() -> None:
    from deputize.server.errors import TooManyRequestsError
    from deputize.server.registration import policy

    now = [1000.0]
    limiter = policy.RateLimiter(2, clock=lambda: now[0])
    limiter.check("a")
    now[0] += 30
    limiter.check("a")
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check("a")
    assert refused.value.headers["Retry-After"] == "30"
    limiter.check("b")  # another source has its own count
    now[0] += 30.5
    limiter.check("a")  # the first request left the window
    for n in range(policy._MAX_SOURCES + 5):
        limiter.check(f"source-{n}")
    assert len(limiter._seen) == policy._MAX_SOURCES


def test_registered_confidential_clients_bind_even_when_bearer_is_allowed(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory, registration={
        **OPEN, "allowed_grant_types": ["client_credentials"],
        "allow_bearer_for_public_clients": True})  # fmt: skip
    body = register(server, {"grant_types": ["client_credentials"]}).json()
    assert body["dpop_bound_access_tokens"] is True
    headers = server.basic(body["client_id"], body["client_secret"])
    response = server.client.post("/token", data={"grant_type": "client_credentials"},
                                  headers=headers)  # fmt: skip
    assert_registration_error(response, 400, "invalid_request")


def test_a_private_key_jwt_client_registers_its_keys_inline(server: LiveServer) -> None:
    jwks = {"keys": [SigningKey.generate("ES256").public_jwk()]}
    body = register(server, app_metadata(token_endpoint_auth_method="private_key_jwt", jwks=jwks))
    assert body.status_code == 201, body.text
    assert body.json()["jwks"] == jwks and "client_secret" not in body.json()
