"""Token exchange over the real server: the chain alice -> A -> B -> C and its promises."""

from __future__ import annotations

import pytest
from delegation_support import (
    ACCESS_TOKEN,
    DOCS,
    DPOP_KEYS,
    JWT,
    MAIL,
    assertion,
    claims_of,
    exchange,
    introspect,
    own_token,
    start,
    start_chain,
    user_token,
)

from support import LiveServer, ServerFactory


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


def test_alice_a_b_c_end_to_end(server: LiveServer) -> None:
    # alice -> agent-a: from her identity provider's token, authorised by a configured grant.
    first = exchange(
        server, "agent-a", user_token(), subject_type=JWT, scope="docs:read docs:write",
        resource=DOCS, task="quarterly-report",
    )  # fmt: skip
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["issued_token_type"] == ACCESS_TOKEN
    assert body["token_type"] == "DPoP"
    assert "refresh_token" not in body
    t1 = body["access_token"]
    c1 = claims_of(t1)
    assert c1["sub"] == "alice"
    assert c1["act"] == {"sub": "agent-a"}
    assert c1["client_id"] == "agent-a"
    assert c1["cnf"] == {"jkt": DPOP_KEYS["agent-a"].kid}
    assert c1["aud"] == DOCS
    assert c1["task"] == "quarterly-report"

    # agent-a hands a read-only piece to agent-b: a single-use hand-off token for agent-b.
    handoff = exchange(server, "agent-a", t1, audience="agent-b", scope="docs:read")
    assert handoff.status_code == 200, handoff.text
    assert handoff.json()["token_type"] == "N_A"
    h = handoff.json()["access_token"]
    assert claims_of(h)["aud"] == "agent-b"
    assert "cnf" not in claims_of(h)
    assert handoff.json()["expires_in"] <= 60

    # agent-b redeems it with its own client authentication and DPoP key.
    redeemed = exchange(server, "agent-b", h, ath=False)
    assert redeemed.status_code == 200, redeemed.text
    t2 = redeemed.json()["access_token"]
    c2 = claims_of(t2)
    assert c2["act"] == {"sub": "agent-b", "act": {"sub": "agent-a"}}
    assert c2["scope"] == "docs:read"
    assert c2["cnf"] == {"jkt": DPOP_KEYS["agent-b"].kid}
    assert c2["exp"] <= c1["exp"]
    # ... and it is not cut to the hand-off's own minute: the hand-off only carried it.
    assert c2["exp"] > claims_of(h)["exp"]
    assert c2["task"] == "quarterly-report"

    # agent-b delegates to agent-c in one call, naming agent-c by its own bound token.
    delegated = exchange(server, "agent-b", t2, actor_token=own_token(server, "agent-c"),
                         actor_token_type=ACCESS_TOKEN)  # fmt: skip
    assert delegated.status_code == 200, delegated.text
    t3 = delegated.json()["access_token"]
    c3 = claims_of(t3)
    assert c3["act"] == {"sub": "agent-c", "act": {"sub": "agent-b", "act": {"sub": "agent-a"}}}
    assert c3["client_id"] == "agent-c"
    assert c3["cnf"] == {"jkt": DPOP_KEYS["agent-c"].kid}

    # Introspection shows the whole chain.
    seen = introspect(server, t3)
    assert seen["active"] is True
    assert seen["act"] == c3["act"]
    assert seen["sub"] == "alice"

    # Revoking agent-a's token revokes everything below it, at once.
    revoked = server.client.post("/revoke", data={"token": t1, **assertion(server, "agent-a")})
    assert revoked.status_code == 200, revoked.text
    for token in (t1, t2, t3):
        assert introspect(server, token) == {"active": False}


def test_scope_escalation_is_refused(server: LiveServer) -> None:
    t1 = start_chain(server, scope="docs:read")
    response = exchange(server, "agent-a", t1, scope="docs:read docs:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_audience_widening_is_refused(server: LiveServer) -> None:
    t1 = start_chain(server, resource=DOCS)
    response = exchange(server, "agent-a", t1, resource=MAIL)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


def test_introspection_tells_a_hand_off_apart_and_ends_it_at_redemption(
    server: LiveServer,
) -> None:
    """A hand-off is no access token: introspection says ``N_A`` (RFC 8693 §2.2.1), not the
    ``Bearer`` it used to report for an unbound token, and once redeemed it is inactive."""
    handoff = exchange(server, "agent-a", start_chain(server), audience="agent-b")
    assert handoff.status_code == 200, handoff.text
    h = handoff.json()["access_token"]
    seen = introspect(server, h)
    assert seen["active"] is True
    assert seen["token_type"] == "N_A"
    assert seen["aud"] == "agent-b"
    assert "cnf" not in seen
    assert exchange(server, "agent-b", h, ath=False).status_code == 200
    assert introspect(server, h) == {"active": False}
