"""Pushed authorization requests (RFC 9126): ``POST /par``, then ``/authorize`` with only
``client_id`` and ``request_uri``; single use, expiry, client binding, PAR required globally
or per client, DPoP binding at PAR (RFC 9449 §10.1), and the storage on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from delegation_support import DOCS, MAIL, claims_of, register_at_runtime
from signin_support import (
    SPA_KEY,
    SPA_REDIRECT,
    WEB_KEY,
    WEB_REDIRECT,
    WEB_SECRET,
    Browser,
    auth_params,
    hidden_fields,
    obtain_code,
    pkce,
    query_of,
    redeem,
    start,
)

from deputize.keys import SigningKey, thumbprint
from deputize.server.cli import main
from deputize.server.clients.secrets import hash_secret
from deputize.server.settings import ConfigError, async_database_url, parse_settings
from deputize.server.storage import pushed_requests
from deputize.server.storage.database import Database

from support import SECRETS, LiveServer, ServerFactory, assert_error, write_config

URN = "urn:ietf:params:oauth:request_uri:"
STRICT_SECRET = "strict-app-secret-0123456789abcdefghijklm"
STRICT_REDIRECT = "http://127.0.0.1:9/strict"


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.close()


def push(
    server: LiveServer,
    params: dict[str, Any],
    *,
    client_id: str = "web-app",
    secret: str | None = WEB_SECRET,
    dpop: str | None = None,
) -> httpx.Response:
    """POST /par: the web app with Basic credentials; a public client with client_id only."""
    headers: dict[str, str] = {}
    form = dict(params)
    if secret is not None:
        headers.update(server.basic(client_id, secret))
    else:
        form["client_id"] = client_id
    if dpop is not None:
        headers["DPoP"] = dpop
    return server.client.post("/par", data=form, headers=headers)


def pushed_uri(response: httpx.Response, server: LiveServer) -> str:
    """RFC 9126 §2.2: 201, the URN and its lifetime, never cached."""
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"request_uri", "expires_in"}
    assert body["expires_in"] == server.settings.pushed_request_lifetime
    uri: str = body["request_uri"]
    assert uri.startswith(URN) and len(uri) >= len(URN) + 43
    return uri


def assert_page(response: httpx.Response, text: str) -> None:
    """An error page, redirected nowhere (RFC 9126 §4: no trusted redirect URI)."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert text in response.text


def web_params(**extra: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce()
    return auth_params(scope="openid docs:read", challenge=challenge, **extra), verifier


# --- the code flow through PAR -----------------------------------------------------------------


def test_code_flow_through_par(server: LiveServer, browser: Browser) -> None:
    params, verifier = web_params(resource=DOCS)
    uri = pushed_uri(push(server, params), server)
    # §4: only client_id and request_uri count; what else is sent at /authorize is ignored.
    sent = {"client_id": "web-app", "request_uri": uri, "redirect_uri": WEB_REDIRECT,
            "scope": "docs:write", "resource": MAIL}  # fmt: skip
    result = obtain_code(browser, sent)
    assert result["state"] == params["state"] and result["iss"] == server.url
    response = redeem(server, result["code"], verifier)
    assert response.status_code == 200, response.text
    token = claims_of(response.json()["access_token"])
    assert token["aud"] == DOCS
    assert response.json()["scope"] == "openid docs:read"
    assert claims_of(response.json()["id_token"])["nonce"] == params["nonce"]
    # §4: single use.
    assert_page(browser.authorize({"client_id": "web-app", "request_uri": uri}), "expired")


def test_the_pushed_request_stays_in_the_back_channel(server: LiveServer, browser: Browser) -> None:
    """The sign-in hop and the consent form carry a new single-use request_uri, not the
    pushed parameters (RFC 9126 §1: integrity and confidentiality of the request)."""
    params, _ = web_params()
    uri = pushed_uri(push(server, params), server)
    first = browser.authorize({"client_id": "web-app", "request_uri": uri})
    assert first.status_code == 302, first.text
    next_ = query_of(first.headers["location"])["next"]
    assert "code_challenge" not in next_ and "request_uri" in next_ and uri not in next_
    signed_in = browser.sign_in("alice", next_=next_)
    consent = browser.get(signed_in.headers["location"])
    assert consent.status_code == 200, consent.text
    fields = hidden_fields(consent.text)
    assert set(fields) == {"csrf", "user", "client_id", "request_uri"}, fields
    assert params["code_challenge"] not in consent.text
    # Each hop is single use: the sign-in hop's request_uri is spent.
    assert_page(browser.get(signed_in.headers["location"]), "expired")
    done = browser.consent(consent)
    assert done.status_code == 303 and done.headers["location"].startswith(WEB_REDIRECT)
    assert "code" in query_of(done.headers["location"])
    assert_page(browser.post_form("/authorize", {**{k: v[0] for k, v in fields.items()},
                                                 "decision": "allow"}), "expired")  # fmt: skip


def test_a_public_client_pushes_with_its_client_id_and_dpop_binds_the_code(
    server: LiveServer, browser: Browser
) -> None:
    verifier, challenge = pkce()
    params = auth_params("spa", redirect_uri=SPA_REDIRECT, scope="docs:read", challenge=challenge)
    proof = server.proof(SPA_KEY, url=server.settings.par_endpoint)
    uri = pushed_uri(push(server, params, client_id="spa", secret=None, dpop=proof), server)
    result = obtain_code(browser, {"client_id": "spa", "request_uri": uri,
                                   "redirect_uri": SPA_REDIRECT})  # fmt: skip
    # RFC 9449 §10.1: the proof at PAR bound the code to its key, as dpop_jkt would.
    other = SigningKey.generate("ES256")
    stolen = redeem(
        server, result["code"], verifier, client_id="spa", redirect_uri=SPA_REDIRECT,
        dpop_key=other,
    )  # fmt: skip
    assert_error(stolen, 400, "invalid_grant")
    good = redeem(server, result["code"], verifier, client_id="spa", redirect_uri=SPA_REDIRECT,
                  dpop_key=SPA_KEY)  # fmt: skip
    assert good.status_code == 200, good.text


def test_dpop_at_par_refuses_a_mismatched_key_or_a_bad_proof(server: LiveServer) -> None:
    params, _ = web_params(dpop_jkt=thumbprint(SigningKey.generate("ES256").public.to_jwk()))
    proof = server.proof(WEB_KEY, url=server.settings.par_endpoint)
    assert_error(push(server, params, dpop=proof), 400, "invalid_dpop_proof")
    params, _ = web_params()
    for_token_endpoint = server.proof(WEB_KEY)  # htu is the token endpoint, not /par
    assert_error(push(server, params, dpop=for_token_endpoint), 400, "invalid_dpop_proof")
    # RFC 9449 §8: without the server's nonce, a challenge with the nonce to retry with.
    no_nonce = server.proof(WEB_KEY, url=server.settings.par_endpoint, nonce=None)
    challenged = push(server, params, dpop=no_nonce)
    assert_error(challenged, 400, "use_dpop_nonce")
    assert challenged.headers["dpop-nonce"]
    # A proof is accepted once (RFC 9449 §11.1), at /par as at /token.
    proof = server.proof(WEB_KEY, url=server.settings.par_endpoint)
    pushed_uri(push(server, params, dpop=proof), server)
    assert_error(push(server, params, dpop=proof), 400, "invalid_dpop_proof")


# --- request_uri: single use, expiry, the client it belongs to ---------------------------------


def test_expired_request_uri_is_refused(server: LiveServer, browser: Browser) -> None:
    params, _ = web_params()
    uri = pushed_uri(push(server, params), server)
    server.clock.offset = server.settings.pushed_request_lifetime
    assert_page(browser.authorize({"client_id": "web-app", "request_uri": uri}), "expired")


def test_another_clients_request_uri_is_refused_and_not_spent(
    server: LiveServer, browser: Browser
) -> None:
    params, _ = web_params()
    uri = pushed_uri(push(server, params), server)
    assert_page(browser.authorize({"client_id": "spa", "request_uri": uri}), "expired")
    assert_page(browser.authorize({"request_uri": uri}), "client_id")
    assert_page(
        browser.get(f"/authorize?client_id=web-app&request_uri={uri}&request_uri={uri}"),
        "one request_uri",
    )
    # Still the web app's, once.
    result = obtain_code(browser, {"client_id": "web-app", "request_uri": uri,
                                   "redirect_uri": WEB_REDIRECT})  # fmt: skip
    assert "code" in result, result


@pytest.mark.parametrize(
    "uri",
    [URN + "made-up-0123456789abcdefghijklmnopqrstuvwxyzABCD", URN, URN + "x" * 500],
    ids=["unknown", "empty reference", "huge"],
)
def test_unknown_request_uri_is_an_error_page(
    server: LiveServer, browser: Browser, uri: str
) -> None:
    assert_page(browser.authorize({"client_id": "web-app", "request_uri": uri}), "expired")


# --- /par refuses what /authorize refuses, in JSON ---------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"scope": "payments:send"}, 400, "invalid_scope"),
        ({"resource": "https://evil.example.com"}, 400, "invalid_target"),
        ({"resource": DOCS + "#x"}, 400, "invalid_target"),
        ({"code_challenge": None}, 400, "invalid_request"),
        ({"code_challenge_method": "plain"}, 400, "invalid_request"),
        ({"response_type": "token"}, 400, "unsupported_response_type"),
        ({"redirect_uri": "https://evil.example.com/cb"}, 400, "invalid_request"),
        ({"redirect_uri": None}, 400, "invalid_request"),
        ({"request_uri": URN + "abc"}, 400, "invalid_request"),  # RFC 9126 §2.1
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, 400, "request_not_supported"),
        ({"client_id": "spa"}, 400, "invalid_request"),  # not the authenticated client
        ({"prompt": "none login"}, 400, "invalid_request"),
        ({"dpop_jkt": "short"}, 400, "invalid_request"),
        ({"scope": ["docs:read", "docs:write"]}, 400, "invalid_request"),  # repeated
    ],
)
def test_par_validates_like_authorize(
    server: LiveServer, change: dict[str, Any], status: int, error: str
) -> None:
    params: dict[str, Any] = web_params()[0]
    for name, value in change.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    assert_error(push(server, params), status, error)


@pytest.mark.parametrize(
    ("client_id", "secret", "extra"),
    [
        ("web-app", "wrong-secret", {}),
        ("web-app", None, {}),  # a confidential client naming itself only
        ("nobody", "whatever", {}),
        ("web-app", None, {"client_secret": WEB_SECRET + "x"}),
    ],
    ids=["wrong secret", "no authentication", "unknown client", "wrong client_secret_post"],
)
def test_par_authenticates_the_client(
    server: LiveServer, client_id: str, secret: str | None, extra: dict[str, str]
) -> None:
    params, _ = web_params()
    params.pop("client_id")
    assert_error(push(server, {**params, **extra}, client_id=client_id, secret=secret), 401,
                 "invalid_client")  # fmt: skip


def test_par_refuses_a_client_without_the_code_grant(server: LiveServer) -> None:
    params, _ = web_params()
    params.pop("client_id")
    response = push(server, params, client_id="svc-basic", secret=SECRETS["svc-basic"])
    assert_error(response, 400, "unauthorized_client")


def test_par_bounds_the_body_and_the_method(server: LiveServer) -> None:
    params, _ = web_params(nonce="n" * (server.settings.max_body_bytes + 1))
    assert_error(push(server, params), 413, "invalid_request")
    assert server.client.get("/par").status_code == 405


# --- PAR required ------------------------------------------------------------------------------


def test_par_required_for_every_client(server_factory: ServerFactory) -> None:
    server = start(server_factory, sign_in={"require_pushed_authorization_requests": True})
    document = server.client.get("/.well-known/oauth-authorization-server").json()
    assert document["require_pushed_authorization_requests"] is True
    browser = Browser(server)
    try:
        params, verifier = web_params()
        refused = browser.authorize(params)
        assert refused.status_code == 302, refused.text
        assert query_of(refused.headers["location"])["error"] == "invalid_request"
        assert refused.headers["location"].startswith(WEB_REDIRECT + "?")
        # Through PAR, every hop (sign-in, consent) passes the requirement.
        uri = pushed_uri(push(server, params), server)
        result = obtain_code(browser, {"client_id": "web-app", "request_uri": uri,
                                       "redirect_uri": WEB_REDIRECT})  # fmt: skip
        assert redeem(server, result["code"], verifier).status_code == 200
    finally:
        browser.close()


def test_par_required_for_one_runtime_client(server: LiveServer, browser: Browser) -> None:
    register_at_runtime(server, [{
        "client_id": "strict-app", "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": hash_secret(STRICT_SECRET),
        "grant_types": ["authorization_code"], "redirect_uris": [STRICT_REDIRECT],
        "scopes": ["docs:read"], "audiences": [DOCS],
        "require_pushed_authorization_requests": True,
    }])  # fmt: skip
    params = auth_params("strict-app", redirect_uri=STRICT_REDIRECT, scope="docs:read")
    refused = browser.authorize(params)
    assert refused.status_code == 302, refused.text
    assert query_of(refused.headers["location"])["error"] == "invalid_request"
    # Others are not concerned; the strict app gets through with PAR.
    assert "code" in obtain_code(browser, web_params()[0])
    uri = pushed_uri(push(server, params, client_id="strict-app", secret=STRICT_SECRET), server)
    result = obtain_code(browser, {"client_id": "strict-app", "request_uri": uri,
                                   "redirect_uri": STRICT_REDIRECT})  # fmt: skip
    assert "code" in result, result


# --- settings ----------------------------------------------------------------------------------


def test_settings_bound_the_lifetime_and_name_the_key() -> None:
    base = {"issuer": "https://as.example.com", "database": {"url": "sqlite:///x.db"}}
    settings = parse_settings(
        {**base, "sign_in": {"pushed_request_lifetime": 30,
                             "require_pushed_authorization_requests": True}}, env={}
    )  # fmt: skip
    assert settings.pushed_request_lifetime == 30
    assert settings.require_pushed_authorization_requests is True
    assert parse_settings(base, env={}).pushed_request_lifetime == 60
    for bad in (0, 4, 601, "sixty"):
        with pytest.raises(ConfigError, match=r"sign_in\.pushed_request_lifetime"):
            parse_settings({**base, "sign_in": {"pushed_request_lifetime": bad}}, env={})
    with pytest.raises(ConfigError, match=r"sign_in\.require_pushed_authorization_requests"):
        parse_settings({**base, "sign_in": {"require_pushed_authorization_requests": "yes"}},
                       env={})  # fmt: skip
    client = {"client_id": "c", "token_endpoint_auth_method": "none",
              "grant_types": ["authorization_code"], "redirect_uris": ["https://c.example/cb"],
              "require_pushed_authorization_requests": 1}  # fmt: skip
    with pytest.raises(ConfigError, match="require_pushed_authorization_requests"):
        parse_settings({**base, "clients": [client]}, env={})


# --- storage, on SQLite and PostgreSQL ---------------------------------------------------------


NOW = 1_800_000_000
PAIRS = [("client_id", "web-app"), ("resource", DOCS), ("resource", MAIL), ("scope", "a b")]


def _run_storage(database_url: str, scenario: Any) -> Any:
    async def main() -> Any:
        db = Database(async_database_url(database_url), pool_size=10)
        try:
            await db.migrate()
            return await scenario(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def test_storage_takes_once_for_its_client_before_expiry(database_url: str) -> None:
    async def scenario(db: Database) -> list[Any]:
        uris = [pushed_requests.new_request_uri() for _ in range(3)]
        async with db.begin() as conn:
            for uri, expires_at in zip(uris, (NOW + 60, NOW + 60, NOW), strict=True):
                await pushed_requests.store(
                    conn, uri, client_id="web-app", params=PAIRS, expires_at=expires_at
                )
        results = []
        async with db.begin() as conn:
            results.append(await pushed_requests.take(conn, uris[0], "spa", NOW))  # not spa's
            results.append(await pushed_requests.take(conn, uris[0], "web-app", NOW))
            results.append(await pushed_requests.take(conn, uris[0], "web-app", NOW))  # used
            results.append(await pushed_requests.take(conn, uris[2], "web-app", NOW))  # expired
            results.append(await pushed_requests.take(conn, "https://x/y", "web-app", NOW))
        async with db.begin() as conn:
            await pushed_requests.purge(conn, NOW + 61)
            results.append(await pushed_requests.take(conn, uris[1], "web-app", NOW))  # purged
        return results

    assert _run_storage(database_url, scenario) == [None, PAIRS, None, None, None, None]


def test_concurrent_takes_admit_exactly_one(database_url: str) -> None:
    async def scenario(db: Database) -> list[Any]:
        uri = pushed_requests.new_request_uri()
        async with db.begin() as conn:
            await pushed_requests.store(
                conn, uri, client_id="web-app", params=PAIRS, expires_at=NOW + 60
            )

        async def attempt() -> Any:
            async with db.begin() as conn:
                return await pushed_requests.take(conn, uri, "web-app", NOW)

        return list(await asyncio.gather(*(attempt() for _ in range(10))))

    results = _run_storage(database_url, scenario)
    assert results.count(PAIRS) == 1 and results.count(None) == 9


@pytest.mark.usefixtures("no_deputize_environment")
def test_clients_add_require_par(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path / "deputize.yaml", database_url))
    status = main(["clients", "add", "--config", config, "--client-id", "strict-cli",
                   "--grant-type", "authorization_code", "--redirect-uri", STRICT_REDIRECT,
                   "--require-par"])  # fmt: skip
    assert status == 0
    capsys.readouterr()
    assert main(["clients", "list", "--config", config, "--json"]) == 0
    listed = {c["client_id"]: c for c in json.loads(capsys.readouterr().out)}
    assert listed["strict-cli"]["require_pushed_authorization_requests"] is True
    assert listed["svc-basic"]["require_pushed_authorization_requests"] is False
