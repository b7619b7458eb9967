"""The authorization code flow end to end over HTTP: sign-in, consent, code, tokens."""

from __future__ import annotations

import pytest
from delegation_support import claims_of, introspect
from signin_support import Browser, sign_in_and_get_tokens, start

from support import LiveServer, ServerFactory


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


def test_sign_in_consent_and_tokens(server: LiveServer, browser: Browser) -> None:
    body = sign_in_and_get_tokens(server, browser)
    assert body["token_type"] == "DPoP"
    claims = claims_of(body["access_token"])
    assert claims["sub"] == "alice" and claims["client_id"] == "web-app" and "act" not in claims
    assert introspect(server, body["access_token"])["active"] is True
    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == "web-app" and id_claims["nonce"] == body["_params"]["nonce"]
    assert body["refresh_token"].startswith("dzr_")
