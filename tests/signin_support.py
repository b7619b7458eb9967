"""Shared set-up for sign-in tests: users, a web app, a public app, and a scripted browser
(httpx with a cookie jar) that walks /authorize, the sign-in page and the consent page."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import html
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from delegation_support import DOCS, MAIL, TOKEN_EXCHANGE, assertion, delegation_config

from deputize.keys import SigningKey
from deputize.server.accounts import actions as accounts
from deputize.server.accounts.passwords import hash_password
from deputize.server.clients.secrets import hash_secret
from deputize.server.storage import users
from deputize.server.storage.database import Database

from support import LiveServer, ServerFactory

WEB_SECRET = "web-app-secret-0123456789abcdefghijklmnop"
WEB_REDIRECT = "http://127.0.0.1:9/callback"
SPA_REDIRECT = "http://127.0.0.1:9/spa"
AGENT_REDIRECT = "http://127.0.0.1:9/agent"
PASSWORD = "correct horse battery staple"
#: The public client's DPoP key, and the web app's.
SPA_KEY = SigningKey.generate("ES256")
WEB_KEY = SigningKey.generate("ES256")


def signin_clients() -> list[dict[str, Any]]:
    return [
        {
            "client_id": "web-app",
            "name": "Example Docs",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(WEB_SECRET),
            "grant_types": ["authorization_code", "refresh_token", TOKEN_EXCHANGE],
            "redirect_uris": [WEB_REDIRECT],
            "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
            "scopes": ["docs:read", "docs:write", "mail:send"],
            "audiences": [DOCS, MAIL],
            "delegate_agents": ["agent-c"],
        },
        {
            "client_id": "spa",
            "name": "Docs in the browser",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [SPA_REDIRECT],
            "scopes": ["docs:read"],
            "audiences": [DOCS],
        },
    ]


def start(
    factory: ServerFactory, *, agent_d: Mapping[str, Any] | None = None, **overrides: Any
) -> LiveServer:
    """A live server with the delegation agents, the sign-in clients and users alice and bob.

    agent-d is an agent that signs users in itself (code flow); ``agent_d`` adds to its entry."""
    config = delegation_config(
        agent_overrides={
            "agent-d": {
                "name": "Travel Agent",
                "grant_types": ["authorization_code", TOKEN_EXCHANGE],
                "redirect_uris": [AGENT_REDIRECT],
                **(agent_d or {}),
            }
        }
    )
    config["clients"] = config["clients"] + signin_clients()
    config.update(overrides)
    server = factory.start(config)
    add_user(server, "alice", name="Alice Example", email="alice@example.com")
    add_user(server, "bob")
    return server


def run_db(server: LiveServer, action: Any) -> Any:
    async def go() -> Any:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                return await action(conn)
        finally:
            await db.dispose()

    # In a thread of its own: a browser test's Playwright loop may be running in this one.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


def add_user(
    server: LiveServer, sub: str, *, name: str | None = None, email: str | None = None
) -> None:
    now = int(time.time())
    user = users.User(
        sub=sub, password_hash=hash_password(PASSWORD), name=name, email=email,
        created_at=now, password_changed_at=now, disabled_at=None,
    )  # fmt: skip
    assert run_db(server, lambda conn: accounts.add_user(conn, user, now, by="test"))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def hidden_fields(page: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page):
        fields.setdefault(html.unescape(name), []).append(html.unescape(value))
    return fields


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Browser:
    """A scripted browser: a cookie jar, no automatic redirects, and the last page seen."""

    server: LiveServer
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.url, timeout=30, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def post_form(
        self, url: str, fields: Mapping[str, str | list[str]], **kwargs: Any
    ) -> httpx.Response:
        return self.http.post(url, data=dict(fields), **kwargs)

    def sign_in(
        self, username: str = "alice", password: str = PASSWORD, *, next_: str = "account"
    ) -> httpx.Response:
        page = self.get("/login", params={"next": next_})
        assert page.status_code == 200, page.text
        fields = hidden_fields(page.text)
        return self.post_form(
            "/login",
            {"csrf": fields["csrf"][0], "return_to": fields["return_to"][0],
             "username": username, "password": password},
        )  # fmt: skip

    def authorize(self, params: Mapping[str, str]) -> httpx.Response:
        return self.get("/authorize?" + urlencode(dict(params)))

    def consent(self, page: httpx.Response, decision: str = "allow") -> httpx.Response:
        assert page.status_code == 200, page.text
        fields = hidden_fields(page.text)
        return self.post_form("/authorize", {**fields, "decision": decision})


def auth_params(
    client_id: str = "web-app",
    *,
    redirect_uri: str = WEB_REDIRECT,
    scope: str = "openid profile email docs:read",
    challenge: str | None = None,
    **extra: str,
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge or pkce()[1],
        "code_challenge_method": "S256",
        "nonce": secrets.token_urlsafe(8),
    }
    params.update(extra)
    return params


def obtain_code(
    browser: Browser, params: Mapping[str, str], *, username: str = "alice", consent: bool = True
) -> dict[str, str]:
    """Walk /authorize -> sign-in (if needed) -> consent (if asked) -> the redirect; returns
    the redirect's query parameters."""
    response = browser.authorize(params)
    if response.status_code == 302 and "/login?" in response.headers["location"]:
        next_ = query_of(response.headers["location"])["next"]
        signed_in = browser.sign_in(username, next_=next_)
        assert signed_in.status_code == 303, signed_in.text
        response = browser.get(signed_in.headers["location"])
    if response.status_code == 200 and consent:
        response = browser.consent(response)
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith(params["redirect_uri"]), location
    return query_of(location)


def redeem(
    server: LiveServer,
    code: str,
    verifier: str,
    *,
    client_id: str = "web-app",
    redirect_uri: str = WEB_REDIRECT,
    dpop_key: SigningKey | None = WEB_KEY,
    **extra: str,
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": redirect_uri, **extra}  # fmt: skip
    return _token_request(server, form, client_id, dpop_key)


def _token_request(
    server: LiveServer, form: dict[str, str], client_id: str, dpop_key: SigningKey | None
) -> httpx.Response:
    """POST /token as ``client_id``: the confidential web app authenticates with its secret,
    a public client names itself; with a DPoP proof when given a key."""
    headers: dict[str, str] = {}
    if client_id == "web-app":
        headers.update(server.basic("web-app", WEB_SECRET))
    else:
        form["client_id"] = client_id
    if dpop_key is not None:
        headers["DPoP"] = server.proof(dpop_key)
    return server.client.post("/token", data=form, headers=headers)


def refresh_grant(
    server: LiveServer,
    token: str,
    *,
    client_id: str = "web-app",
    dpop_key: SigningKey | None = WEB_KEY,
    **extra: str,
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return _token_request(server, form, client_id, dpop_key)


def sign_in_and_get_tokens(
    server: LiveServer,
    browser: Browser,
    *,
    client_id: str = "web-app",
    scope: str = "openid profile email docs:read",
    dpop_key: SigningKey | None = None,
    **extra: str,
) -> dict[str, Any]:
    verifier, challenge = pkce()
    redirect_uri = {"web-app": WEB_REDIRECT, "spa": SPA_REDIRECT, "agent-d": AGENT_REDIRECT}[
        client_id
    ]
    params = auth_params(
        client_id, redirect_uri=redirect_uri, scope=scope, challenge=challenge, **extra
    )
    result = obtain_code(browser, params)
    assert "code" in result, result
    key = dpop_key or (SPA_KEY if client_id == "spa" else WEB_KEY)
    if client_id == "agent-d":
        form = {
            "grant_type": "authorization_code",
            "code": result["code"],
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            **assertion(server, "agent-d"),
        }
        response = server.client.post("/token", data=form, headers={"DPoP": server.proof(key)})
    else:
        response = redeem(
            server,
            result["code"],
            verifier,
            client_id=client_id,
            redirect_uri=redirect_uri,
            dpop_key=key,
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["_params"] = params
    return body
