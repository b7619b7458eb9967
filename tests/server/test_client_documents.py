"""Client ID Metadata Documents over real HTTP: a client named by the URL of its document
signs a person in with PKCE, and every hostile document is refused — an error page at
/authorize (never a redirect to a URI nobody verified), ``invalid_client`` at /token, never a
5xx — with the cache counted at the publisher, not waited for."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from delegation_support import claims_of
from document_publisher import Page, Publisher, document_publisher
from signin_support import (
    SPA_KEY,
    Browser,
    add_user,
    auth_params,
    obtain_code,
    pkce,
    redeem,
    refresh_grant,
)

from support import LiveServer, ServerFactory, assert_error

REDIRECT = "http://127.0.0.1:9/cimd"
DEVELOPMENT = {"allow_http_loopback": True, "allow_private_addresses": True, "deadline": 0.5}


def document(client_id: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client_id": client_id,
        "client_name": "Example MCP Client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def publish(publisher: Publisher, path: str, doc: Any, **page: Any) -> str:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    publisher.pages[path] = Page(body=body, **page)
    return publisher.url(path)


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    with document_publisher() as p:
        yield p


def start(factory: ServerFactory, **settings: Any) -> LiveServer:
    server = factory.start({"client_documents": {**DEVELOPMENT, **settings}})
    add_user(server, "alice", name="Alice Example")
    return server


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


def authorize_params(client_id: str, challenge: str | None = None) -> dict[str, str]:
    return auth_params(
        client_id, redirect_uri=REDIRECT, scope="openid profile", challenge=challenge
    )


def assert_refused_page(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert "client metadata document could not be used" in response.text
    assert reason in response.text


def assert_refused_at_token(server: LiveServer, client_id: str, reason: str) -> None:
    response = server.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "x" * 43, "code_verifier": "y" * 43,
              "redirect_uri": REDIRECT, "client_id": client_id},
    )  # fmt: skip
    body = assert_error(response, 401, "invalid_client")
    assert reason in body["error_description"]


# --- a good document --------------------------------------------------------------------------


def test_a_document_client_signs_a_person_in_with_pkce(
    server: LiveServer, browser: Browser, publisher: Publisher
) -> None:
    client_id = publisher.url("/client.json")
    publish(publisher, "/client.json", document(client_id), headers={
        "Content-Type": "application/json", "Cache-Control": "max-age=300"})  # fmt: skip
    verifier, challenge = pkce()
    params = authorize_params(client_id, challenge)
    first = browser.authorize(params)
    assert first.status_code == 302 and "/login?" in first.headers["location"]
    result = obtain_code(browser, params)
    assert "code" in result, result
    response = redeem(
        server, result["code"], verifier, client_id=client_id, redirect_uri=REDIRECT,
        dpop_key=SPA_KEY,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    claims = claims_of(body["access_token"])
    assert claims["client_id"] == client_id and claims["sub"] == "alice"
    assert "act" not in claims and body["token_type"] == "DPoP"
    refreshed = refresh_grant(server, body["refresh_token"], client_id=client_id, dpop_key=SPA_KEY)
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["client_id"] == client_id
    # /authorize twice, the consent, /token and the refresh: one fetch, then the cache.
    assert publisher.hits["/client.json"] == 1
    assert publisher.hosts[0] == publisher.base.removeprefix("http://")


def test_the_consent_page_shows_the_name_and_the_host(
    browser: Browser, publisher: Publisher
) -> None:
    client_id = publisher.url("/consent.json")
    publish(publisher, "/consent.json", document(client_id, client_name="Totally Your Bank"))
    browser.sign_in()
    page = browser.authorize(authorize_params(client_id))
    assert page.status_code == 200, page.text
    assert 'id="client-name">Totally Your Bank<' in page.text
    assert 'id="client-host">(127.0.0.1)<' in page.text


def test_metadata_advertises_documents(server: LiveServer) -> None:
    metadata = server.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["client_id_metadata_document_supported"] is True


def test_disabled_documents_are_neither_fetched_nor_advertised(
    server_factory: ServerFactory, publisher: Publisher
) -> None:
    server = start(server_factory, enabled=False)
    client_id = publisher.url("/off.json")
    publish(publisher, "/off.json", document(client_id))
    metadata = server.client.get("/.well-known/oauth-authorization-server").json()
    assert "client_id_metadata_document_supported" not in metadata
    browser = Browser(server)
    try:
        page = browser.authorize(authorize_params(client_id))
    finally:
        browser.close()
    assert page.status_code == 400 and "location" not in page.headers
    assert "not registered" in page.text
    assert_error(
        server.client.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                           "client_id": client_id}),
        401, "invalid_client",
    )  # fmt: skip
    assert publisher.hits["/off.json"] == 0


# --- hostile documents ---------------------------------------------------------------------------

HOSTILE: dict[str, tuple[Any, dict[str, Any], str]] = {
    # name: (document or raw body (with {id} for the URL), page settings, the reason shown)
    "huge body": (b" " * 100_000 + b"{}", {}, "larger than 5120 bytes"),
    "endless body": (b"", {"mode": "endless"}, "larger than 5120 bytes"),
    "slow body": ("GOOD", {"mode": "drip", "interval": 0.2}, "did not arrive within 0.5 s"),
    "redirect": (b"", {"status": 302, "headers": {"Location": "http://127.0.0.1:9/x.json"}},
                 "redirect"),
    "error status": (b"", {"status": 500}, "answered HTTP 500"),
    "wrong client_id": ({"client_id": "https://elsewhere.example/client.json"}, {},
                        "client_id is not the URL"),
    "malformed JSON": (b'{"client_id": ', {}, "not valid JSON"),
    "not an object": (b'["{id}"]', {}, "not a JSON object"),
    "not JSON content type": ("GOOD", {"headers": {"Content-Type": "text/html"}},
                              "not served as application/json"),
    "secret auth method": ({"token_endpoint_auth_method": "client_secret_basic"}, {},
                           "no shared secrets"),
    "client secret": ({"client_secret": "s3cret-s3cret-s3cret"}, {}, "must not hold client_secret"),
    "jwks_uri": ({"token_endpoint_auth_method": "private_key_jwt",
                  "jwks_uri": "http://169.254.169.254/keys"}, {}, "jwks_uri is not supported"),
    "client_credentials": ({"grant_types": ["client_credentials"]}, {}, "grant_types"),
    "no redirect_uris": ({"redirect_uris": None}, {}, "redirect_uris is required"),
    "redirect to plain http": ({"redirect_uris": ["http://evil.example/cb"]}, {}, "must use https"),
}  # fmt: skip


def _hostile(publisher: Publisher, name: str) -> str:
    doc, page, _ = HOSTILE[name]
    path = "/" + name.replace(" ", "-") + ".json"
    client_id = publisher.url(path)
    if doc == "GOOD":
        body: Any = document(client_id)
    elif isinstance(doc, dict):
        body = document(client_id, **doc) if "client_id" not in doc else doc
    else:
        body = doc.replace(b"{id}", client_id.encode())
    publish(publisher, path, body, **page)
    return client_id


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_document_is_refused_with_a_page_and_invalid_client(
    server: LiveServer, browser: Browser, publisher: Publisher, name: str
) -> None:
    client_id = _hostile(publisher, name)
    reason = HOSTILE[name][2]
    started = time.monotonic()
    assert_refused_page(browser.authorize(authorize_params(client_id)), reason)
    assert_refused_at_token(server, client_id, reason)
    # The deadline (0.5 s) bounds even the slow one; errors are never cached, so two fetches.
    assert time.monotonic() - started < 4
    assert publisher.hits["/" + name.replace(" ", "-") + ".json"] == 2


def test_a_redirect_uri_not_in_the_document_gets_a_page(
    browser: Browser, publisher: Publisher
) -> None:
    client_id = publisher.url("/strict.json")
    publish(publisher, "/strict.json", document(client_id))
    params = authorize_params(client_id)
    params["redirect_uri"] = "http://127.0.0.1:9/cimd/other"
    page = browser.authorize(params)
    assert page.status_code == 400 and "location" not in page.headers
    assert "has not registered" in page.text


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("http://127.0.0.1:{port}/plain.json", "must use https"),
        ("https://127.0.0.1:{port}/a/../client.json", ". or .. path segments"),
        ("https://127.0.0.1:{port}/./client.json", ". or .. path segments"),
        ("https://user@127.0.0.1:{port}/client.json", "user name or password"),
        ("https://127.0.0.1:{port}/", "must have a path"),
        ("https://127.0.0.1:{port}/client.json?v=1", "no query"),
        ("https://127.0.0.1:{port}/" + "a" * 130, "longer than 128"),
    ],
)
def test_a_bad_client_id_url_is_never_fetched(
    server_factory: ServerFactory, publisher: Publisher, client_id: str, reason: str
) -> None:
    server = start(server_factory, allow_http_loopback=False)
    client_id = client_id.format(port=publisher.base.rsplit(":", 1)[1])
    browser = Browser(server)
    try:
        assert_refused_page(browser.authorize(authorize_params(client_id)), reason)
    finally:
        browser.close()
    assert_refused_at_token(server, client_id, reason)
    assert sum(publisher.hits.values()) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_address_is_refused_unless_allowed(
    server_factory: ServerFactory, publisher: Publisher, host: str
) -> None:
    server = start(server_factory, allow_private_addresses=False)
    client_id = publisher.url("/private.json").replace("127.0.0.1", host)
    publish(publisher, "/private.json", document(client_id))
    browser = Browser(server)
    try:
        assert_refused_page(browser.authorize(authorize_params(client_id)), "private or reserved")
    finally:
        browser.close()
    assert_refused_at_token(server, client_id, "private or reserved")
    assert publisher.hits["/private.json"] == 0


# --- the cache ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "fetches"),
    [("max-age=300", 1), ("no-store", 3), ("", 1), ("max-age=0", 3), ("private, max-age=60", 3)],
)
def test_the_cache_follows_cache_control(
    browser: Browser, publisher: Publisher, cache_control: str, fetches: int
) -> None:
    client_id = publisher.url("/cached.json")
    headers = {"Content-Type": "application/json"}
    if cache_control:
        headers["Cache-Control"] = cache_control
    publish(publisher, "/cached.json", document(client_id), headers=headers)
    for _ in range(3):
        response = browser.authorize(authorize_params(client_id))
        assert response.status_code == 302, response.text  # to the sign-in page
    assert publisher.hits["/cached.json"] == fetches


def test_the_cache_expires_after_max_age(
    server_factory: ServerFactory, publisher: Publisher
) -> None:
    server = start(server_factory, cache_min_seconds=10)
    client_id = publisher.url("/aging.json")
    publish(publisher, "/aging.json", document(client_id), headers={
        "Content-Type": "application/json", "Cache-Control": "max-age=30"})  # fmt: skip
    browser = Browser(server)
    try:
        assert browser.authorize(authorize_params(client_id)).status_code == 302
        server.clock.offset = 29
        assert browser.authorize(authorize_params(client_id)).status_code == 302
        assert publisher.hits["/aging.json"] == 1
        server.clock.offset = 31
        assert browser.authorize(authorize_params(client_id)).status_code == 302
        assert publisher.hits["/aging.json"] == 2
    finally:
        browser.close()


def test_secret_authentication_never_fetches_a_document(
    server: LiveServer, publisher: Publisher
) -> None:
    client_id = publisher.url("/secret.json")
    publish(publisher, "/secret.json", document(client_id))
    response = server.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "x"},
        headers=server.basic(client_id, "a-secret-that-nobody-registered-0123456789"),
    )
    assert_error(response, 401, "invalid_client")
    assert publisher.hits["/secret.json"] == 0
