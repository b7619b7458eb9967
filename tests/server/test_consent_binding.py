"""Rule 4: a consent is bound to the app it was given at.

alice signs in at ``web-app`` and consents to it handing her authority to agent-c (its
``delegate_agents``); she also signs in at ``web2``, which names no agent.  Both apps hold a
token of hers.  Only ``web-app`` may hand hers to agent-c, by hand-off or by ``actor_token``:
the consent names agent-c for ``web-app``, not for every app alice uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from delegation_support import (
    ACCESS_TOKEN,
    DOCS,
    DPOP_KEYS,
    MAIL,
    TOKEN_EXCHANGE,
    claims_of,
    delegation_config,
    exchange,
    ledger,
    own_token,
)
from signin_support import (
    WEB_KEY,
    WEB_SECRET,
    Browser,
    add_user,
    auth_params,
    obtain_code,
    pkce,
    sign_in_and_get_tokens,
    signin_clients,
)

from deputize.keys import SigningKey
from deputize.server.clients.secrets import hash_secret

from support import LiveServer, ServerFactory

WEB2_SECRET = "web2-secret-0123456789abcdefghijklmnopqrs"
WEB2_REDIRECT = "http://127.0.0.1:9/web2"
WEB2_KEY = SigningKey.generate("ES256")
APP_KEYS = {"web-app": WEB_KEY, "web2": WEB2_KEY}
APP_SECRETS = {"web-app": WEB_SECRET, "web2": WEB2_SECRET}


def web2() -> dict[str, Any]:
    """A second app alice signs in at: the same abilities as web-app, but it names no agent."""
    return {
        "client_id": "web2",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": hash_secret(WEB2_SECRET),
        "grant_types": ["authorization_code", TOKEN_EXCHANGE],
        "redirect_uris": [WEB2_REDIRECT],
        "scopes": ["docs:read", "docs:write", "mail:send"],
        "audiences": [DOCS, MAIL],
    }


@dataclass
class Held:
    server: LiveServer
    tokens: dict[str, str]
    """alice's access token, by the app holding it."""


@pytest.fixture
def held(server_factory: ServerFactory) -> Iterator[Held]:
    config = delegation_config()
    config["clients"] = config["clients"] + signin_clients() + [web2()]
    server = server_factory.start(config)
    add_user(server, "alice")
    browser = Browser(server)
    try:
        tokens = {"web-app": sign_in_and_get_tokens(server, browser)["access_token"]}
        verifier, challenge = pkce()
        params = auth_params("web2", redirect_uri=WEB2_REDIRECT, challenge=challenge)
        code = obtain_code(browser, params)["code"]
    finally:
        browser.close()
    response = server.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
              "redirect_uri": WEB2_REDIRECT},
        headers={"DPoP": server.proof(WEB2_KEY), **server.basic("web2", WEB2_SECRET)},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    tokens["web2"] = response.json()["access_token"]
    yield Held(server, tokens)


def app_exchange(held: Held, app: str, **params: str) -> httpx.Response:
    """``app`` exchanges the token of alice's it holds, proving its key."""
    server, token = held.server, held.tokens[app]
    return server.client.post(
        "/token",
        data={"grant_type": TOKEN_EXCHANGE, "subject_token": token,
              "subject_token_type": ACCESS_TOKEN, **params},
        headers={"DPoP": server.proof(APP_KEYS[app], access_token=token),
                 **server.basic(app, APP_SECRETS[app])},
    )  # fmt: skip


def hand_off_and_redeem(held: Held, app: str) -> httpx.Response:
    handoff = app_exchange(held, app, audience="agent-c")
    if handoff.status_code != 200:
        return handoff
    return exchange(held.server, "agent-c", handoff.json()["access_token"], ath=False)


def delegate_by_actor_token(held: Held, app: str) -> httpx.Response:
    actor = own_token(held.server, "agent-c")
    return app_exchange(held, app, actor_token=actor, actor_token_type=ACCESS_TOKEN)


def alices(server: LiveServer) -> set[str]:
    """The jti of every token the ledger holds for alice."""
    return {jti for jti, row in ledger(server).items() if row.subject == "alice"}


@dataclass(frozen=True)
class Row:
    send: Callable[[Held, str], httpx.Response]
    app: str
    error: str | None
    """None: agent-c gets a token acting for alice."""


ROWS = [
    pytest.param(Row(hand_off_and_redeem, "web2", "invalid_request"),
                 id="another app cannot hand off alice's token to the agent her consent names"),
    pytest.param(Row(delegate_by_actor_token, "web2", "invalid_request"),
                 id="another app cannot delegate alice's token to that agent by actor_token"),
    pytest.param(Row(hand_off_and_redeem, "web-app", None),
                 id="the app she consented at hands off her token to the agent"),
    pytest.param(Row(delegate_by_actor_token, "web-app", None),
                 id="the app she consented at delegates her token to the agent by actor_token"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS)
def test_consent_counts_only_for_the_app_it_was_given_at(held: Held, row: Row) -> None:
    before = alices(held.server)
    response = row.send(held, row.app)
    if row.error is None:
        assert response.status_code == 200, response.text
        claims = claims_of(response.json()["access_token"])
        assert (claims["sub"], claims["act"]) == ("alice", {"sub": "agent-c"})
        assert claims["cnf"] == {"jkt": DPOP_KEYS["agent-c"].public.thumbprint}
        return
    assert response.status_code == 400, response.text
    assert response.json()["error"] == row.error, response.text
    assert "not authorised" in response.json()["error_description"]
    assert alices(held.server) == before, "a refused exchange issued a token"
