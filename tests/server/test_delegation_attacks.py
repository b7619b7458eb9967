"""Attacks on token exchange, each refused with its exact OAuth error and nothing issued.

Every row of the tables below sets up what an attacker would hold (``prepare``), then sends the
one request that tries to abuse it.  The runner asserts the status and ``error`` code, that the
body carries no token, and that the server's ledger gained no token.  The promises attacked are
those of ``docs/delegation.md``.  The tests outside the tables check what *was* issued
(forbidden scope left out, lifetimes capped, tasks inherited) and revocation, including
revocations racing concurrent exchanges and concurrent redemptions of one hand-off: their
outcomes vary from run to run, the assertions do not.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from delegation_support import (
    ACCESS_TOKEN,
    AGENT_SCOPES,
    DOCS,
    DPOP_KEYS,
    ID_TOKEN,
    IDP_KEY,
    JWT,
    MAIL,
    TOKEN_EXCHANGE,
    assertion,
    claims_of,
    delegation_config,
    exchange,
    fresh_jti,
    introspect,
    ledger,
    own_token,
    start,
    start_chain,
    user_token,
)
from signin_support import WEB_KEY, WEB_SECRET, Browser, sign_in_and_get_tokens
from signin_support import start as start_with_sign_in

from deputize.keys import SigningKey, sign
from deputize.server.settings import parse_client
from deputize.server.storage import clients as client_rows
from deputize.server.storage.database import Database
from deputize.server.tokens import revocation

from support import LiveServer, ServerFactory

Send = Callable[[], httpx.Response]

ROGUE_KEY = SigningKey.generate("ES256")
"""The attacker's own key."""
ALICE_KEY = SigningKey.generate("ES256")
"""The key alice's app binds her identity-provider token to (``cnf.jkt``)."""
EVIL_ISSUER = "https://idp.evil.example"
HANDOFF_LIFETIME = 60
REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"


@dataclass(frozen=True)
class Attack:
    prepare: Callable[[LiveServer], Send]
    """Sets up what the attacker holds; returns the request that must be refused."""
    error: str
    config: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``delegation_support.start``."""
    status: int = 400


def refused(server: LiveServer, send: Send, *, error: str, status: int = 400) -> dict[str, Any]:
    """Send the request: it must fail with ``status`` and ``error`` and issue no token.
    Returns the error body."""
    before = ledger(server)
    response = send()
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    assert ledger(server).keys() == before.keys(), "a refused exchange issued a token"
    return body


def run(factory: ServerFactory, attack: Attack) -> None:
    server = start(factory, **attack.config)
    refused(server, attack.prepare(server), error=attack.error, status=attack.status)


# --- building blocks ----------------------------------------------------------------------------


def ok(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def delegate(server: LiveServer, holder: str, token: str, actor: str, **params: Any) -> str:
    """``holder`` delegates ``token`` to ``actor`` in one call (actor_token): actor's token."""
    return ok(
        exchange(server, holder, token, actor_token=own_token(server, actor),
                 actor_token_type=ACCESS_TOKEN, **params)
    )  # fmt: skip


def hand_off(server: LiveServer, holder: str, token: str, recipient: str, **params: Any) -> str:
    return ok(exchange(server, holder, token, audience=recipient, **params))


def redeem(server: LiveServer, agent: str, handoff: str, **params: Any) -> httpx.Response:
    return exchange(server, agent, handoff, ath=False, **params)


def chain_to_b(server: LiveServer, **params: Any) -> str:
    """alice -> agent-a -> agent-b through a hand-off: agent-b's token."""
    return ok(redeem(server, "agent-b", hand_off(server, "agent-a", start_chain(server), "agent-b",
                                                  **params)))  # fmt: skip


def revoke(server: LiveServer, agent: str, token: str) -> None:
    response = server.client.post("/revoke", data={"token": token, **assertion(server, agent)})
    assert response.status_code == 200, response.text


def post(
    server: LiveServer, agent: str, form: Mapping[str, str | list[str]], *, dpop: str | None
) -> httpx.Response:
    """A token-exchange request exactly as given: any form, with or without a DPoP header."""
    data = {"grant_type": TOKEN_EXCHANGE, **assertion(server, agent), **form}
    headers = {"DPoP": dpop} if dpop is not None else {}
    return server.client.post("/token", data=data, headers=headers)


def person_exchange(server: LiveServer, agent: str, token: str, **params: Any) -> Send:
    return lambda: exchange(server, agent, token, subject_type=JWT, **params)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Mapping[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def person_claims(**claims: Any) -> dict[str, Any]:
    return claims_of(user_token(**claims))


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


def unsigned_token() -> str:
    """alice's claims with ``alg: none`` and an empty signature."""
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(person_claims())}."


def hmac_with_public_pem() -> str:
    """Algorithm confusion: HS256 keyed with the identity provider's public key PEM."""
    private = serialization.load_pem_private_key(IDP_KEY.to_pem(), password=None)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': IDP_KEY.kid})}." + segment(
        person_claims()
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered_token() -> str:
    """A genuine docs:read token from the identity provider, its payload raised to docs:write."""
    head, _, signature = user_token(scope="docs:read").split(".")
    return f"{head}.{segment(person_claims(scope='docs:read docs:write'))}.{signature}"


# --- scope ---------------------------------------------------------------------------------------


def scope_beyond_parent(server: LiveServer) -> Send:
    t1 = start_chain(server, scope="docs:read")
    return lambda: exchange(server, "agent-a", t1, scope="docs:read docs:write")


def scope_beyond_persons_token(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(scope="docs:read"), scope="docs:write")


def scope_client_not_registered_for(server: LiveServer) -> Send:
    token = user_token(scope="docs:read calendar:read")
    return person_exchange(server, "agent-a", token, scope="calendar:read")


def scope_actor_not_registered_for(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-c")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN, scope="docs:write")  # fmt: skip


def scope_recipient_not_registered_for(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="agent-c", scope="docs:write")


def forbidden_scope_first_hop(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(), scope="docs:read payments:send")


def forbidden_scope_granted_by_person(server: LiveServer) -> Send:
    token = user_token(scope="docs:read payments:send")
    return person_exchange(server, "agent-a", token, scope="payments:send")


def forbidden_scope_re_exchange(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, scope="payments:send")


def forbidden_scope_hand_off(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="agent-b", scope="payments:send")


def forbidden_scope_redemption(server: LiveServer) -> Send:
    handoff = hand_off(server, "agent-a", start_chain(server), "agent-b")
    return lambda: redeem(server, "agent-b", handoff, scope="payments:send")


def scope_beyond_grant_cap(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(), scope="docs:read docs:write")


def forbidden_scope_service_delegating_to_agent(server: LiveServer) -> Send:
    """agent-a is a plain service here: it may hold payments:send for alice, and asks for it
    to be passed on to the agent it delegates to — the agent is the new holder."""
    t1 = start_chain(server)
    assert "payments:send" in claims_of(t1)["scope"].split()
    actor = own_token(server, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN, scope="payments:send")  # fmt: skip


SERVICE_A: dict[str, Any] = {
    "agent_overrides": {"agent-a": {"agent": False, "scopes": [*AGENT_SCOPES, "payments:send"]}}
}
"""agent-a registered as a plain (DPoP-bound) service, not an agent: it may hold payments:send."""
HELD_FORBIDDEN: dict[str, Any] = {"held_forbidden": True}
"""The agents registered at runtime with payments:send, before it was forbidden to agents."""
ONLY_AGENT_C_READS: dict[str, Any] = {"agent_overrides": {"agent-c": {"scopes": ["docs:read"]}}}
CAPPED_GRANT: dict[str, Any] = {
    "grants": [{"subject": "alice", "agents": ["agent-a"], "scopes": ["docs:read"]}]
}

SCOPE_ATTACKS = [
    pytest.param(Attack(scope_beyond_parent, "invalid_scope"),
                 id="rejects scope wider than the parent token"),
    pytest.param(Attack(scope_beyond_persons_token, "invalid_scope"),
                 id="rejects scope wider than the person's token at the first hop"),
    pytest.param(Attack(scope_client_not_registered_for, "invalid_scope"),
                 id="rejects a scope the person has but the agent is not registered for"),
    pytest.param(Attack(scope_actor_not_registered_for, "invalid_scope", ONLY_AGENT_C_READS),
                 id="rejects a scope the actor is not registered for"),
    pytest.param(Attack(scope_recipient_not_registered_for, "invalid_scope", ONLY_AGENT_C_READS),
                 id="rejects a hand-off with a scope its recipient is not registered for"),
    pytest.param(Attack(forbidden_scope_first_hop, "invalid_scope", HELD_FORBIDDEN),
                 id="rejects the forbidden agent scope at the first hop though the client has it"),
    pytest.param(Attack(forbidden_scope_granted_by_person, "invalid_scope", HELD_FORBIDDEN),
                 id="rejects the forbidden agent scope though the person's token grants it"),
    pytest.param(Attack(forbidden_scope_re_exchange, "invalid_scope", HELD_FORBIDDEN),
                 id="rejects the forbidden agent scope when re-exchanging"),
    pytest.param(Attack(forbidden_scope_hand_off, "invalid_scope", HELD_FORBIDDEN),
                 id="rejects the forbidden agent scope in a hand-off"),
    pytest.param(Attack(forbidden_scope_redemption, "invalid_scope", HELD_FORBIDDEN),
                 id="rejects the forbidden agent scope when redeeming a hand-off"),
    pytest.param(Attack(scope_beyond_grant_cap, "invalid_scope", CAPPED_GRANT),
                 id="rejects scope beyond the cap of the grant that authorises the agent"),
    pytest.param(Attack(forbidden_scope_service_delegating_to_agent, "invalid_scope", SERVICE_A),
                 id="rejects the forbidden agent scope when a service delegates to an agent"),
]  # fmt: skip


@pytest.mark.parametrize("attack", SCOPE_ATTACKS)
def test_scope_only_narrows(server_factory: ServerFactory, attack: Attack) -> None:
    run(server_factory, attack)


# --- audience ------------------------------------------------------------------------------------


def resource_beyond_parent(server: LiveServer) -> Send:
    t1 = start_chain(server, resource=DOCS)
    return lambda: exchange(server, "agent-a", t1, resource=MAIL)


def audience_uri_beyond_parent(server: LiveServer) -> Send:
    t1 = start_chain(server, resource=DOCS)
    return lambda: exchange(server, "agent-a", t1, audience=MAIL)


def resource_client_may_not_receive(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(), resource="https://evil.example")


def hand_off_widening_audience(server: LiveServer) -> Send:
    t1 = start_chain(server, resource=DOCS)
    return lambda: exchange(server, "agent-a", t1, audience="agent-b", resource=MAIL)


def redemption_widening_audience(server: LiveServer) -> Send:
    handoff = hand_off(server, "agent-a", start_chain(server), "agent-b", resource=DOCS)
    return lambda: redeem(server, "agent-b", handoff, resource=MAIL)


def hand_off_to_service(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="svc-basic")


def hand_off_to_resource_server(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="resource-server")


def resource_actor_may_not_receive(server: LiveServer) -> Send:
    """t1 is for DOCS and MAIL; agent-c may only receive DOCS, and MAIL is asked for it."""
    t1 = start_chain(server)
    assert claims_of(t1)["aud"] == [DOCS, MAIL]
    actor = own_token(server, "agent-c")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN, resource=MAIL)  # fmt: skip


AGENT_C_DOCS_ONLY: dict[str, Any] = {"agent_overrides": {"agent-c": {"audiences": [DOCS]}}}


AUDIENCE_ATTACKS = [
    pytest.param(Attack(resource_beyond_parent, "invalid_target"),
                 id="rejects a resource outside the parent token's audience"),
    pytest.param(Attack(audience_uri_beyond_parent, "invalid_target"),
                 id="rejects an audience URI outside the parent token's audience"),
    pytest.param(Attack(resource_client_may_not_receive, "invalid_target"),
                 id="rejects a resource the agent may not receive at the first hop"),
    pytest.param(Attack(hand_off_widening_audience, "invalid_target"),
                 id="rejects a hand-off that widens the audience"),
    pytest.param(Attack(redemption_widening_audience, "invalid_target"),
                 id="rejects a redemption that widens the hand-off's audience"),
    pytest.param(Attack(hand_off_to_service, "invalid_target"),
                 id="treats a hand-off to a non-agent client as a resource and refuses it"),
    pytest.param(Attack(hand_off_to_resource_server, "invalid_target"),
                 id="treats a hand-off to the resource server as a resource and refuses it"),
    pytest.param(Attack(resource_actor_may_not_receive, "invalid_target", AGENT_C_DOCS_ONLY),
                 id="rejects delegating to an actor a resource in the parent it may not receive"),
]  # fmt: skip


@pytest.mark.parametrize("attack", AUDIENCE_ATTACKS)
def test_audience_only_narrows(server_factory: ServerFactory, attack: Attack) -> None:
    run(server_factory, attack)


def test_audience_the_actor_may_not_receive_is_left_out(server_factory: ServerFactory) -> None:
    """agent-a holds a token for DOCS and MAIL and delegates it, without naming a resource, to
    agent-c, registered for DOCS only: MAIL must not pass to agent-c with the rest."""
    server = start(server_factory, **AGENT_C_DOCS_ONLY)
    t1 = start_chain(server)
    assert claims_of(t1)["aud"] == [DOCS, MAIL]
    t_c = delegate(server, "agent-a", t1, "agent-c")
    assert claims_of(t_c)["aud"] == DOCS
    assert introspect(server, t_c)["aud"] == DOCS


def register_at_runtime(server: LiveServer, entry: Mapping[str, Any], *, replace: bool) -> None:
    """``deputize clients add`` — after ``deputize clients remove`` when ``replace``: the
    client as a database row, which every request reads afresh."""
    client = parse_client(dict(entry), "test client", env={})

    async def run() -> None:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                now = int(server.clock())
                if replace:
                    assert await client_rows.remove(conn, client.client_id, now, by="test")
                await client_rows.add(conn, client, now, by="test")
        finally:
            await db.dispose()

    asyncio.run(run())


def test_redemption_audience_follows_the_redeemers_narrowed_registration(
    server_factory: ServerFactory,
) -> None:
    """Hand-offs to agent-d (a client registered at runtime) are made while it may receive
    DOCS and MAIL; then the operator re-registers it for DOCS only.  Redeeming must not give
    agent-d MAIL after all: asked for, it is ``invalid_target``; not asked for, left out."""
    config = delegation_config()
    entry = next(c for c in config["clients"] if c["client_id"] == "agent-d")
    config["clients"].remove(entry)
    server = server_factory.start(config)
    register_at_runtime(server, entry, replace=False)
    t1 = start_chain(server)
    asking, plain = (hand_off(server, "agent-a", t1, "agent-d") for _ in range(2))
    assert claims_of(asking)["resources"] == claims_of(plain)["resources"] == [DOCS, MAIL]

    register_at_runtime(server, {**entry, "audiences": [DOCS]}, replace=True)

    refused(server, lambda: redeem(server, "agent-d", asking, resource=MAIL),
            error="invalid_target")  # fmt: skip
    assert claims_of(ok(redeem(server, "agent-d", plain)))["aud"] == DOCS


# --- depth and cycles ----------------------------------------------------------------------------


def third_hop_by_actor_token(server: LiveServer) -> Send:
    t2 = delegate(server, "agent-a", start_chain(server), "agent-b")
    actor = own_token(server, "agent-c")
    return lambda: exchange(server, "agent-b", t2, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def third_hop_by_hand_off(server: LiveServer) -> Send:
    t2 = delegate(server, "agent-a", start_chain(server), "agent-b")
    return lambda: exchange(server, "agent-b", t2, audience="agent-c")


def second_hop_by_actor_token(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def second_hop_by_hand_off(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="agent-b")


def hand_back_to_first_agent(server: LiveServer) -> Send:
    t2 = chain_to_b(server)
    return lambda: exchange(server, "agent-b", t2, audience="agent-a")


def delegate_back_to_first_agent(server: LiveServer) -> Send:
    t2 = chain_to_b(server)
    actor = own_token(server, "agent-a")
    return lambda: exchange(server, "agent-b", t2, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def delegate_to_itself(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-a")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def hand_off_to_itself(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="agent-a")


def subject_acting_for_itself(server: LiveServer) -> Send:
    token = user_token("agent-a", may_act={"sub": "agent-a"})
    return person_exchange(server, "agent-a", token)


MAX_DEPTH_2: dict[str, Any] = {"max_depth": 2}
B_DEPTH_1: dict[str, Any] = {"agent_overrides": {"agent-b": {"max_delegation_depth": 1}}}

CHAIN_ATTACKS = [
    pytest.param(Attack(third_hop_by_actor_token, "invalid_request", MAX_DEPTH_2),
                 id="refuses a third hop by actor_token when max_depth is 2"),
    pytest.param(Attack(third_hop_by_hand_off, "invalid_request", MAX_DEPTH_2),
                 id="refuses a hand-off that would make a third hop when max_depth is 2"),
    pytest.param(Attack(second_hop_by_actor_token, "invalid_request", B_DEPTH_1),
                 id="refuses delegating past the actor's max_delegation_depth"),
    pytest.param(Attack(second_hop_by_hand_off, "invalid_request", B_DEPTH_1),
                 id="refuses a hand-off past the recipient's max_delegation_depth"),
    pytest.param(Attack(hand_back_to_first_agent, "invalid_request"),
                 id="refuses a cycle: handing off back to an agent already in the chain"),
    pytest.param(Attack(delegate_back_to_first_agent, "invalid_request"),
                 id="refuses a cycle: delegating back to an agent already in the chain"),
    pytest.param(Attack(delegate_to_itself, "invalid_request"),
                 id="refuses a cycle: an agent delegating to itself by actor_token"),
    pytest.param(Attack(hand_off_to_itself, "invalid_request"),
                 id="refuses a cycle: an agent handing off to itself"),
    pytest.param(Attack(subject_acting_for_itself, "invalid_request"),
                 id="refuses a person's token whose subject is the agent itself"),
]  # fmt: skip


@pytest.mark.parametrize("attack", CHAIN_ATTACKS)
def test_chain_depth_is_bounded_and_acyclic(server_factory: ServerFactory, attack: Attack) -> None:
    run(server_factory, attack)


# --- proof of possession -------------------------------------------------------------------------


def stolen_with_thiefs_key(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, dpop_key=ROGUE_KEY)


def holders_key_with_ath_of_another_token(server: LiveServer) -> Send:
    t1, other = start_chain(server), start_chain(server)
    return lambda: exchange(
        server, "agent-a", t1, proof=server.proof(DPOP_KEYS["agent-a"], access_token=other)
    )


def holders_key_with_non_ascii_ath(server: LiveServer) -> Send:
    """An ``ath`` that no hash can be: compared in constant time it is a mismatch, not an
    exception (``hmac.compare_digest`` raises for non-ASCII text)."""
    t1 = start_chain(server)
    key = DPOP_KEYS["agent-a"]
    claims = {
        "jti": fresh_jti(), "htm": "POST", "htu": server.token_endpoint,
        "iat": int(server.clock()), "nonce": server.nonce(), "ath": "é" * 43,
    }  # fmt: skip
    proof = sign(
        claims, key, typ="dpop+jwt", headers={"jwk": key.public.to_jwk()}, include_kid=False
    )
    return lambda: exchange(server, "agent-a", t1, proof=proof)


def stolen_by_other_client(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-b", t1)


def stolen_with_key_by_other_client(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-b", t1, dpop_key=DPOP_KEYS["agent-a"])


def replayed_proof(server: LiveServer) -> Send:
    t1 = start_chain(server)
    proof = server.proof(DPOP_KEYS["agent-a"], access_token=t1)
    ok(exchange(server, "agent-a", t1, proof=proof, scope="docs:read"))
    return lambda: exchange(server, "agent-a", t1, proof=proof)


def without_proof(server: LiveServer) -> Send:
    form = {"subject_token": user_token(), "subject_token_type": JWT}
    return lambda: post(server, "agent-a", form, dpop=None)


def without_proof_from_unbound_client(server: LiveServer) -> Send:
    t1 = start_chain(server)  # the token endpoint does not insist on DPoP here: the grant does
    form = {"subject_token": t1, "subject_token_type": ACCESS_TOKEN}
    return lambda: post(server, "agent-a", form, dpop=None)


def person_bound_token_with_agents_key(server: LiveServer) -> Send:
    token = user_token(cnf={"jkt": ALICE_KEY.kid})
    return lambda: exchange(server, "agent-a", token, subject_type=JWT, ath=True)


UNBOUND_SERVICE_A: dict[str, Any] = {  # agents must be DPoP-bound; a plain service need not be
    "agent_overrides": {"agent-a": {"agent": False, "dpop_bound_access_tokens": False}}
}

# Without ath, and ath under dpop.require_subject_token_ath: test_exchange_ath.py.
POSSESSION_ATTACKS = [
    pytest.param(Attack(stolen_with_thiefs_key, "invalid_dpop_proof"),
                 id="refuses a stolen bound token proved with the thief's key"),
    pytest.param(Attack(holders_key_with_ath_of_another_token, "invalid_dpop_proof"),
                 id="refuses the holder's key when ath is for another token"),
    pytest.param(Attack(holders_key_with_non_ascii_ath, "invalid_dpop_proof"),
                 id="refuses the holder's key when ath is not even ASCII"),
    pytest.param(Attack(stolen_by_other_client, "invalid_dpop_proof"),
                 id="refuses another client presenting the token with its own key"),
    pytest.param(Attack(stolen_with_key_by_other_client, "invalid_request"),
                 id="refuses another client even with the holder's stolen key"),
    pytest.param(Attack(replayed_proof, "invalid_dpop_proof"),
                 id="refuses a DPoP proof used before"),
    pytest.param(Attack(without_proof, "invalid_request"),
                 id="refuses an exchange without a DPoP proof"),
    pytest.param(Attack(without_proof_from_unbound_client, "invalid_request", UNBOUND_SERVICE_A),
                 id="refuses an exchange without a DPoP proof from a client not held to DPoP"),
    pytest.param(Attack(person_bound_token_with_agents_key, "invalid_dpop_proof"),
                 id="refuses a person's key-bound token proved with the agent's key"),
]  # fmt: skip


@pytest.mark.parametrize("attack", POSSESSION_ATTACKS)
def test_only_the_key_holder_exchanges(server_factory: ServerFactory, attack: Attack) -> None:
    run(server_factory, attack)


# --- hand-off ------------------------------------------------------------------------------------


def handoff_for_b(server: LiveServer) -> str:
    return hand_off(server, "agent-a", start_chain(server), "agent-b")


def handoff_reused(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    ok(redeem(server, "agent-b", handoff))
    return lambda: redeem(server, "agent-b", handoff)


def handoff_by_other_agent(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    return lambda: redeem(server, "agent-c", handoff)


def handoff_by_its_maker(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    return lambda: redeem(server, "agent-a", handoff)


def handoff_expired(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    server.clock.offset += HANDOFF_LIFETIME + 1
    return lambda: redeem(server, "agent-b", handoff)


def handoff_with_actor_token(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    actor = own_token(server, "agent-c")
    return lambda: redeem(server, "agent-b", handoff, actor_token=actor,
                          actor_token_type=ACCESS_TOKEN)  # fmt: skip


def handoff_passed_on_at_redemption(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    return lambda: redeem(server, "agent-b", handoff, audience="agent-c")


def handoff_as_actor_token(server: LiveServer) -> Send:
    t1 = start_chain(server)
    handoff = hand_off(server, "agent-a", t1, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=handoff,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def handoff_as_persons_token(server: LiveServer) -> Send:
    handoff = handoff_for_b(server)
    return lambda: exchange(server, "agent-b", handoff, subject_type=JWT)


HANDOFF_ATTACKS = [
    pytest.param(Attack(handoff_reused, "invalid_request"),
                 id="refuses redeeming a hand-off a second time"),
    pytest.param(Attack(handoff_by_other_agent, "invalid_request"),
                 id="refuses a hand-off redeemed by an agent it does not name"),
    pytest.param(Attack(handoff_by_its_maker, "invalid_request"),
                 id="refuses a hand-off redeemed by the agent that made it"),
    pytest.param(Attack(handoff_expired, "invalid_request"),
                 id="refuses a hand-off redeemed after it expired"),
    pytest.param(Attack(handoff_with_actor_token, "invalid_request"),
                 id="refuses a hand-off redeemed together with an actor_token"),
    pytest.param(Attack(handoff_passed_on_at_redemption, "invalid_request"),
                 id="refuses a hand-off passed on to a third agent at redemption"),
    pytest.param(Attack(handoff_as_actor_token, "invalid_request"),
                 id="refuses a hand-off token used as an actor_token"),
    pytest.param(Attack(handoff_as_persons_token, "invalid_request"),
                 id="refuses a hand-off token presented as a person's token"),
]  # fmt: skip


@pytest.mark.parametrize("attack", HANDOFF_ATTACKS)
def test_hand_off_is_single_use_for_its_recipient(
    server_factory: ServerFactory, attack: Attack
) -> None:
    run(server_factory, attack)


def test_refused_redemption_by_another_agent_does_not_use_up_the_hand_off(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory)
    handoff = handoff_for_b(server)
    refused(server, lambda: redeem(server, "agent-c", handoff), error="invalid_request")
    assert claims_of(ok(redeem(server, "agent-b", handoff)))["act"]["sub"] == "agent-b"


def test_refused_redemption_by_its_recipient_uses_the_hand_off_up(
    server_factory: ServerFactory,
) -> None:
    """agent-b, the named recipient, probes its hand-off with a request that is refused (scope
    beyond the hand-off's), then redeems it properly: a hand-off is single-use, and a refused
    redemption by its recipient counts as its one use."""
    server = start(server_factory)
    handoff = hand_off(server, "agent-a", start_chain(server), "agent-b", scope="docs:read")
    refused(server, lambda: redeem(server, "agent-b", handoff, scope="docs:write"),
            error="invalid_scope")  # fmt: skip
    body = refused(server, lambda: redeem(server, "agent-b", handoff), error="invalid_request")
    assert "already been used" in body["error_description"]
    assert ledger(server)[claims_of(handoff)["jti"]].redeemed_at is not None


# --- subject tokens ------------------------------------------------------------------------------


def persons_token(
    token: Callable[[], str], subject_type: str = JWT
) -> Callable[[LiveServer], Send]:
    """agent-a, which alice authorised, presents a forged or unusable token of hers."""
    return lambda server: lambda: exchange(server, "agent-a", token(), subject_type=subject_type)


def deputize_token_forged_with_our_kid(server: LiveServer) -> Send:
    t1 = start_chain(server)
    forged = sign({**claims_of(t1), "scope": "payments:send"}, ROGUE_KEY, typ="at+jwt",
                  headers={"kid": header_of(t1)["kid"]})  # fmt: skip
    return lambda: exchange(server, "agent-a", forged)


def clients_own_token(server: LiveServer) -> Send:
    own = own_token(server, "agent-a")
    return lambda: exchange(server, "agent-a", own)


def deputize_token_as_persons_token(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, subject_type=JWT)


def delegated_token_expired(server: LiveServer) -> Send:
    t1 = start_chain(server)
    server.clock.offset += claims_of(t1)["exp"] - claims_of(t1)["iat"] + 1
    return lambda: exchange(server, "agent-a", t1)


def persons_token_expired_within_leeway(server: LiveServer) -> Send:
    token = user_token(lifetime=60)
    server.clock.offset += 61
    return person_exchange(server, "agent-a", token)


def revoked_parent(server: LiveServer) -> Send:
    t1 = start_chain(server)
    revoke(server, "agent-a", t1)
    return lambda: exchange(server, "agent-a", t1)


def exchanged_before(server: LiveServer) -> str:
    """A delegated token exchanged once already: its signature is verified and cached."""
    t1 = start_chain(server)
    assert exchange(server, "agent-a", t1).status_code == 200
    return t1


def verified_token_expired(server: LiveServer) -> Send:
    t1 = exchanged_before(server)
    server.clock.offset += claims_of(t1)["exp"] - claims_of(t1)["iat"] + 1
    return lambda: exchange(server, "agent-a", t1)


def verified_token_revoked(server: LiveServer) -> Send:
    t1 = exchanged_before(server)
    revoke(server, "agent-a", t1)
    return lambda: exchange(server, "agent-a", t1)


def verified_token_presented_by_another_key(server: LiveServer) -> Send:
    t1 = exchanged_before(server)
    return lambda: exchange(server, "agent-a", t1, dpop_key=SigningKey.generate("ES256"))


SUBJECT_ATTACKS = [
    pytest.param(Attack(persons_token(lambda: user_token(lifetime=-120)), "invalid_request"),
                 id="refuses an expired person's token"),
    pytest.param(Attack(persons_token_expired_within_leeway, "invalid_request"),
                 id="refuses a person's token expired by less than the clock leeway"),
    pytest.param(Attack(persons_token(lambda: user_token(exp=None)), "invalid_request"),
                 id="refuses a person's token without exp"),
    pytest.param(Attack(persons_token(lambda: user_token(nbf=10**10)), "invalid_request"),
                 id="refuses a person's token not yet valid"),
    pytest.param(Attack(persons_token(lambda: user_token(iss=EVIL_ISSUER)), "invalid_request"),
                 id="refuses a token naming an untrusted issuer, signed with the trusted key"),
    pytest.param(Attack(persons_token(lambda: user_token(iss=EVIL_ISSUER, key=ROGUE_KEY)),
                        "invalid_request"),
                 id="refuses a token from an untrusted issuer"),
    pytest.param(Attack(persons_token(unsigned_token), "invalid_request"),
                 id="refuses alg none"),
    pytest.param(Attack(persons_token(hmac_with_public_pem), "invalid_request"),
                 id="refuses HS256 keyed with the issuer's public key PEM"),
    pytest.param(Attack(persons_token(lambda: user_token(key=ROGUE_KEY)), "invalid_request"),
                 id="refuses a token signed by an unknown key"),
    pytest.param(Attack(persons_token(lambda: sign(person_claims(), ROGUE_KEY, typ="JWT",
                                                   headers={"kid": IDP_KEY.kid})),
                        "invalid_request"),
                 id="refuses an unknown key claiming the issuer's kid"),
    pytest.param(Attack(persons_token(lambda: sign(person_claims(), ROGUE_KEY, typ="JWT",
                                                   headers={"jwk": ROGUE_KEY.public_jwk()},
                                                   include_kid=False)),
                        "invalid_request"),
                 id="refuses a token carrying its own key in a jwk header"),
    pytest.param(Attack(persons_token(tampered_token), "invalid_request"),
                 id="refuses a person's token with a tampered payload"),
    pytest.param(Attack(persons_token(lambda: user_token(aud="another-service")),
                        "invalid_request"),
                 id="refuses a person's token for another audience"),
    pytest.param(Attack(persons_token(lambda: user_token(typ="at+jwt"), ID_TOKEN),
                        "invalid_request"),
                 id="refuses typ at+jwt as an ID token"),
    pytest.param(Attack(persons_token(lambda: user_token(act={"sub": "agent-z"})),
                        "invalid_request"),
                 id="refuses a person's token carrying a foreign act chain"),
    pytest.param(Attack(persons_token(lambda: "not-a-token"), "invalid_request"),
                 id="refuses a subject token that is not a JWT"),
    pytest.param(Attack(persons_token(user_token, ACCESS_TOKEN), "invalid_request"),
                 id="refuses a person's token presented as a Deputize access token"),
    pytest.param(Attack(deputize_token_forged_with_our_kid, "invalid_request"),
                 id="refuses a forged Deputize token naming our kid"),
    pytest.param(Attack(deputize_token_as_persons_token, "invalid_request"),
                 id="refuses a Deputize token presented as a person's token"),
    pytest.param(Attack(clients_own_token, "invalid_request"),
                 id="refuses a client's own client_credentials token as the subject"),
    pytest.param(Attack(delegated_token_expired, "invalid_request"),
                 id="refuses a delegated token after it expired"),
    pytest.param(Attack(revoked_parent, "invalid_request"),
                 id="refuses a delegated token its holder revoked"),
    # The server caches our own tokens' verified signatures: times, revocation and the
    # holder's key are still checked on every use.
    pytest.param(Attack(verified_token_expired, "invalid_request"),
                 id="refuses a delegated token exchanged before, after it expired"),
    pytest.param(Attack(verified_token_revoked, "invalid_request"),
                 id="refuses a delegated token exchanged before, after its revocation"),
    pytest.param(Attack(verified_token_presented_by_another_key, "invalid_dpop_proof"),
                 id="refuses a delegated token exchanged before, with another key's proof"),
]  # fmt: skip


@pytest.mark.parametrize("attack", SUBJECT_ATTACKS)
def test_subject_token_must_be_genuine_and_live(
    server_factory: ServerFactory, attack: Attack
) -> None:
    run(server_factory, attack)


# --- who may act for the person (rule 4) and actor tokens ----------------------------------------


def unauthorised_agent(server: LiveServer) -> Send:
    return person_exchange(server, "agent-b", user_token())


def may_act_names_another_agent(server: LiveServer) -> Send:
    return person_exchange(server, "agent-b", user_token(may_act={"sub": "agent-c"}))


def grant_for_another_person(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token("bob"))


def unauthorised_actor_in_one_call(server: LiveServer) -> Send:
    actor = own_token(server, "agent-b")
    return person_exchange(server, "agent-a", user_token(), actor_token=actor,
                           actor_token_type=ACCESS_TOKEN)  # fmt: skip


def agent_outside_wildcard_grant(server: LiveServer) -> Send:
    return person_exchange(server, "agent-c", user_token("bob"))


def grant_for_another_issuer(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token())


def delegation_token_as_actor(server: LiveServer) -> Send:
    t1 = start_chain(server)
    t_b = delegate(server, "agent-a", t1, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=t_b,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def persons_token_as_actor(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, actor_token=user_token("agent-b"),
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def revoked_actor_token(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-b")
    revoke(server, "agent-b", actor)
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def actor_token_without_type(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor)


def actor_token_of_another_type(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor, actor_token_type=JWT)


def actor_token_type_alone(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, actor_token_type=ACCESS_TOKEN)


WILDCARD_FOR_B: dict[str, Any] = {"grants": [{"subject": "*", "agents": ["agent-b"]}]}
OTHER_ISSUER_GRANT: dict[str, Any] = {
    "grants": [{"subject": "alice", "agents": ["agent-a"], "issuer": "https://other.example"}]
}

AUTHORISATION_ATTACKS = [
    pytest.param(Attack(unauthorised_agent, "invalid_request"),
                 id="refuses an agent the person never authorised"),
    pytest.param(Attack(may_act_names_another_agent, "invalid_request"),
                 id="refuses an agent when may_act names another"),
    pytest.param(Attack(grant_for_another_person, "invalid_request"),
                 id="refuses an agent authorised by another person only"),
    pytest.param(Attack(unauthorised_actor_in_one_call, "invalid_request"),
                 id="refuses delegating a person's token to an unauthorised actor in one call"),
    pytest.param(Attack(agent_outside_wildcard_grant, "invalid_request", WILDCARD_FOR_B),
                 id="refuses an agent the wildcard grant does not name"),
    pytest.param(Attack(grant_for_another_issuer, "invalid_request", OTHER_ISSUER_GRANT),
                 id="refuses a grant limited to another issuer"),
    pytest.param(Attack(delegation_token_as_actor, "invalid_request"),
                 id="refuses a delegation token as the actor_token"),
    pytest.param(Attack(persons_token_as_actor, "invalid_request"),
                 id="refuses a person's token as the actor_token"),
    pytest.param(Attack(revoked_actor_token, "invalid_request"),
                 id="refuses a revoked actor_token"),
    pytest.param(Attack(actor_token_without_type, "invalid_request"),
                 id="refuses an actor_token without actor_token_type"),
    pytest.param(Attack(actor_token_of_another_type, "invalid_request"),
                 id="refuses an actor_token_type other than access_token"),
    pytest.param(Attack(actor_token_type_alone, "invalid_request"),
                 id="refuses an actor_token_type without an actor_token"),
]  # fmt: skip


@pytest.mark.parametrize("attack", AUTHORISATION_ATTACKS)
def test_only_authorised_actors_act(server_factory: ServerFactory, attack: Attack) -> None:
    run(server_factory, attack)


UNBOUND_SERVICE_B: dict[str, Any] = {
    "agent_overrides": {"agent-b": {"agent": False, "dpop_bound_access_tokens": False}}
}


def test_actor_token_not_bound_to_a_key_is_refused(server_factory: ServerFactory) -> None:
    """agent-b is a service allowed plain bearer tokens.  Its bearer token (or a copy of it,
    which anyone who saw it holds) is named as the actor: delegating to it would mint a token
    bound to no key, stripping the binding of agent-a's token.  The same service's DPoP-bound
    token is accepted, and the token is bound to its key."""
    server = start(server_factory, **UNBOUND_SERVICE_B)
    t1 = start_chain(server)
    response = server.client.post(
        "/token", data={"grant_type": "client_credentials", **assertion(server, "agent-b")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    bearer = response.json()["access_token"]
    assert "cnf" not in claims_of(bearer)
    refused(server, lambda: exchange(server, "agent-a", t1, actor_token=bearer,
                                     actor_token_type=ACCESS_TOKEN),
            error="invalid_request")  # fmt: skip

    t_b = delegate(server, "agent-a", t1, "agent-b")
    assert claims_of(t_b)["cnf"] == {"jkt": DPOP_KEYS["agent-b"].public.thumbprint}


# --- rule 4 again when a person's own token is redeemed from a hand-off --------------------------


def test_hand_off_of_a_persons_token_is_not_redeemed_once_the_consent_lapses(
    server_factory: ServerFactory,
) -> None:
    """alice signs in to the web app and consents to it and to agent-c acting for her, for 60
    seconds.  The web app hands her own token off to agent-c while the consent is live; the
    consent then lapses (nothing is revoked: it expires), and agent-c redeems the still-valid
    hand-off.  Rule 4 must be checked again at redemption: agent-c may not start acting for
    alice on an authorisation that no longer exists."""
    server = start_with_sign_in(server_factory, sign_in={"consent_lifetime": 60})
    browser = Browser(server)
    try:
        person = sign_in_and_get_tokens(server, browser)["access_token"]
    finally:
        browser.close()
    server.clock.offset += 30
    response = server.client.post(
        "/token",
        data={"grant_type": TOKEN_EXCHANGE, "subject_token": person,
              "subject_token_type": ACCESS_TOKEN, "audience": "agent-c"},
        headers={"DPoP": server.proof(WEB_KEY, access_token=person),
                 **server.basic("web-app", WEB_SECRET)},
    )  # fmt: skip
    handoff = ok(response)
    assert "act" not in claims_of(handoff)  # a person's own token, handed on: rule 4 applies
    server.clock.offset += 31  # the consent has lapsed; the hand-off and alice's token have not
    assert server.clock() < claims_of(handoff)["exp"] < claims_of(person)["exp"]
    body = refused(server, lambda: redeem(server, "agent-c", handoff), error="invalid_request")
    assert "not authorised" in body["error_description"]


# --- task and request shape ----------------------------------------------------------------------


def task_changed_on_re_exchange(server: LiveServer) -> Send:
    t1 = start_chain(server, task="quarterly-report")
    return lambda: exchange(server, "agent-a", t1, task="wire-transfer")


def task_changed_in_hand_off(server: LiveServer) -> Send:
    t1 = start_chain(server, task="quarterly-report")
    return lambda: exchange(server, "agent-a", t1, audience="agent-b", task="wire-transfer")


def task_changed_at_redemption(server: LiveServer) -> Send:
    handoff = hand_off(server, "agent-a", start_chain(server, task="quarterly-report"), "agent-b")
    return lambda: redeem(server, "agent-b", handoff, task="wire-transfer")


def task_changed_by_actor(server: LiveServer) -> Send:
    t1 = start_chain(server, task="quarterly-report")
    actor = own_token(server, "agent-b")
    return lambda: exchange(server, "agent-a", t1, actor_token=actor,
                            actor_token_type=ACCESS_TOKEN, task="wire-transfer")  # fmt: skip


def task_not_printable(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(), task="report\tfake")


def task_too_long(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(), task="x" * 129)


def refresh_token_requested(server: LiveServer) -> Send:
    return person_exchange(server, "agent-a", user_token(), requested_token_type=REFRESH_TOKEN)


def unknown_subject_token_type(server: LiveServer) -> Send:
    token = user_token()
    return lambda: exchange(server, "agent-a", token,
                            subject_type="urn:ietf:params:oauth:token-type:saml2")  # fmt: skip


def missing_subject_token(server: LiveServer) -> Send:
    return lambda: post(server, "agent-a", {"subject_token_type": JWT},
                        dpop=server.proof(DPOP_KEYS["agent-a"]))  # fmt: skip


def missing_subject_token_type(server: LiveServer) -> Send:
    return lambda: post(server, "agent-a", {"subject_token": user_token()},
                        dpop=server.proof(DPOP_KEYS["agent-a"]))  # fmt: skip


def two_recipients(server: LiveServer) -> Send:
    t1 = start_chain(server)
    form: dict[str, str | list[str]] = {
        "subject_token": t1,
        "subject_token_type": ACCESS_TOKEN,
        "audience": ["agent-b", "agent-c"],
    }
    return lambda: post(server, "agent-a", form,
                        dpop=server.proof(DPOP_KEYS["agent-a"], access_token=t1))  # fmt: skip


def hand_off_with_actor_token(server: LiveServer) -> Send:
    t1 = start_chain(server)
    actor = own_token(server, "agent-c")
    return lambda: exchange(server, "agent-a", t1, audience="agent-b", actor_token=actor,
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


REQUEST_ATTACKS = [
    pytest.param(Attack(task_changed_on_re_exchange, "invalid_request"),
                 id="refuses changing the task fixed by the parent when re-exchanging"),
    pytest.param(Attack(task_changed_in_hand_off, "invalid_request"),
                 id="refuses changing the task in a hand-off"),
    pytest.param(Attack(task_changed_at_redemption, "invalid_request"),
                 id="refuses changing the task when redeeming a hand-off"),
    pytest.param(Attack(task_changed_by_actor, "invalid_request"),
                 id="refuses changing the task when delegating to an actor"),
    pytest.param(Attack(task_not_printable, "invalid_request"),
                 id="refuses a task with control characters"),
    pytest.param(Attack(task_too_long, "invalid_request"),
                 id="refuses a task over 128 characters"),
    pytest.param(Attack(refresh_token_requested, "invalid_request"),
                 id="refuses requested_token_type refresh_token"),
    pytest.param(Attack(unknown_subject_token_type, "invalid_request"),
                 id="refuses an unknown subject_token_type"),
    pytest.param(Attack(missing_subject_token, "invalid_request"),
                 id="refuses a request without subject_token"),
    pytest.param(Attack(missing_subject_token_type, "invalid_request"),
                 id="refuses a request without subject_token_type"),
    pytest.param(Attack(two_recipients, "invalid_request"),
                 id="refuses a hand-off to two agents at once"),
    pytest.param(Attack(hand_off_with_actor_token, "invalid_request"),
                 id="refuses a hand-off combined with an actor_token"),
]  # fmt: skip


@pytest.mark.parametrize("attack", REQUEST_ATTACKS)
def test_malformed_exchange_is_refused(server_factory: ServerFactory, attack: Attack) -> None:
    run(server_factory, attack)


# --- what is issued stays within bounds ----------------------------------------------------------


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return start(server_factory)


def test_forbidden_agent_scope_is_left_out_when_not_requested(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory, **HELD_FORBIDDEN)
    first = exchange(server, "agent-a", user_token(), subject_type=JWT)
    assert first.status_code == 200, first.text
    assert first.json()["scope"] == "docs:read docs:write mail:send"
    t1 = first.json()["access_token"]
    assert claims_of(t1)["scope"] == "docs:read docs:write mail:send"
    assert introspect(server, t1)["scope"] == "docs:read docs:write mail:send"

    granted = ok(exchange(server, "agent-a", user_token(scope="docs:read payments:send"),
                          subject_type=JWT))  # fmt: skip
    assert claims_of(granted)["scope"] == "docs:read"

    handoff = hand_off(server, "agent-a", t1, "agent-b")
    t2 = ok(redeem(server, "agent-b", handoff))
    t3 = delegate(server, "agent-b", t2, "agent-c")
    for token in (handoff, t2, t3):
        assert "payments:send" not in claims_of(token)["scope"].split()


def test_forbidden_agent_scope_is_left_out_when_a_service_delegates_to_an_agent(
    server_factory: ServerFactory,
) -> None:
    """agent-a is a plain service that holds payments:send for alice; it delegates its token
    to agent-b, an agent, without narrowing the scope: the agent is the new holder, so the
    forbidden agent scope must be left out of its token."""
    server = start(server_factory, **SERVICE_A)
    t1 = start_chain(server)
    assert claims_of(t1)["scope"] == "docs:read docs:write mail:send payments:send"
    t_b = delegate(server, "agent-a", t1, "agent-b")
    assert claims_of(t_b)["act"]["sub"] == "agent-b"
    assert claims_of(t_b)["scope"] == "docs:read docs:write mail:send"
    assert introspect(server, t_b)["scope"] == "docs:read docs:write mail:send"


def test_no_child_outlives_a_short_lived_parent(server: LiveServer) -> None:
    person = user_token(lifetime=60)
    first = exchange(server, "agent-a", person, subject_type=JWT)
    assert first.status_code == 200, first.text
    assert first.json()["expires_in"] <= 60
    t1 = first.json()["access_token"]
    assert claims_of(t1)["exp"] <= claims_of(person)["exp"]

    t1b = ok(exchange(server, "agent-a", t1, scope="docs:read"))
    handoff = hand_off(server, "agent-a", t1, "agent-b")
    t2 = ok(redeem(server, "agent-b", handoff))
    t3 = delegate(server, "agent-b", t2, "agent-c")
    # A redeemed token is bounded by the token the hand-off was made from, not by the
    # hand-off's own short life.
    for child, parent in ((t1b, t1), (handoff, t1), (t2, t1), (t3, t2)):
        assert claims_of(child)["exp"] <= claims_of(parent)["exp"]


def test_client_max_token_lifetime_caps_its_tokens(server_factory: ServerFactory) -> None:
    ceilings = {"agent-a": {"max_token_lifetime": 30}, "agent-b": {"max_token_lifetime": 20}}
    server = start(server_factory, agent_overrides=ceilings)
    first = exchange(server, "agent-a", user_token(), subject_type=JWT)
    assert first.status_code == 200, first.text
    assert first.json()["expires_in"] == 30
    t1 = first.json()["access_token"]
    assert claims_of(t1)["exp"] - claims_of(t1)["iat"] == 30

    again = exchange(server, "agent-a", t1)
    assert again.status_code == 200, again.text
    assert again.json()["expires_in"] <= 30

    handoff = exchange(server, "agent-a", t1, audience="agent-b")
    assert handoff.status_code == 200, handoff.text
    assert handoff.json()["expires_in"] <= 20
    redeemed = redeem(server, "agent-b", handoff.json()["access_token"])
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["expires_in"] <= 20

    t_c = delegate(server, "agent-a", t1, "agent-c")  # agent-c has no ceiling: t1's exp bounds it
    assert claims_of(t_c)["exp"] <= claims_of(t1)["exp"]


def test_actor_max_token_lifetime_caps_the_token_delegated_to_it(
    server_factory: ServerFactory,
) -> None:
    """agent-a, which has no ceiling, delegates its 300-second token to agent-c, whose
    registration caps its tokens at 30 seconds: the ceiling is the new holder's, not the
    requester's, so agent-c must not get a token that outlives its own limit."""
    server = start(server_factory, agent_overrides={"agent-c": {"max_token_lifetime": 30}})
    t1 = start_chain(server)
    assert claims_of(t1)["exp"] - claims_of(t1)["iat"] == 300
    response = exchange(server, "agent-a", t1, actor_token=own_token(server, "agent-c"),
                        actor_token_type=ACCESS_TOKEN)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 30
    t_c = response.json()["access_token"]
    assert claims_of(t_c)["act"]["sub"] == "agent-c"
    assert claims_of(t_c)["exp"] - claims_of(t_c)["iat"] == 30


def test_second_hop_within_max_depth_is_allowed(server_factory: ServerFactory) -> None:
    server = start(server_factory, max_depth=2)
    t2 = delegate(server, "agent-a", start_chain(server), "agent-b")
    assert claims_of(t2)["act"] == {"sub": "agent-b", "act": {"sub": "agent-a"}}


def test_person_key_bound_token_is_exchanged_with_a_proof_by_its_key(server: LiveServer) -> None:
    person = user_token(cnf={"jkt": ALICE_KEY.kid})
    t1 = ok(exchange(server, "agent-a", person, subject_type=JWT, dpop_key=ALICE_KEY, ath=True))
    assert claims_of(t1)["cnf"] == {"jkt": ALICE_KEY.kid}


@pytest.mark.parametrize(
    "may_act",
    [{"sub": "agent-b"}, [{"sub": "agent-c"}, {"sub": "agent-b"}]],
    ids=["may_act naming the agent authorises it", "a may_act list naming the agent does too"],
)
def test_may_act_authorises_the_agent_it_names(server: LiveServer, may_act: Any) -> None:
    t1 = ok(exchange(server, "agent-b", user_token(may_act=may_act), subject_type=JWT))
    assert claims_of(t1)["act"] == {"sub": "agent-b"}


def test_grant_scopes_cap_what_the_agent_gets(server_factory: ServerFactory) -> None:
    server = start(server_factory, **CAPPED_GRANT)
    t1 = ok(exchange(server, "agent-a", user_token(), subject_type=JWT))
    assert claims_of(t1)["scope"] == "docs:read"


def test_wildcard_grant_lets_its_agents_act_for_anyone(server_factory: ServerFactory) -> None:
    server = start(server_factory, **WILDCARD_FOR_B)
    for person in ("alice", "bob"):
        token = ok(exchange(server, "agent-b", user_token(person), subject_type=JWT))
        assert claims_of(token)["sub"] == person


def test_task_flows_to_every_child(server: LiveServer) -> None:
    t1 = start_chain(server, task="quarterly-report")
    same = ok(exchange(server, "agent-a", t1, task="quarterly-report"))
    handoff = hand_off(server, "agent-a", t1, "agent-b")
    assert introspect(server, handoff)["task"] == "quarterly-report"  # inactive once redeemed
    t2 = ok(redeem(server, "agent-b", handoff))
    t3 = delegate(server, "agent-b", t2, "agent-c")
    assert claims_of(handoff)["task"] == "quarterly-report"
    for token in (t1, same, t2, t3):
        assert claims_of(token)["task"] == "quarterly-report"
        assert introspect(server, token)["task"] == "quarterly-report"


# --- revocation ----------------------------------------------------------------------------------


def test_revoked_parent_takes_its_children_down(server: LiveServer) -> None:
    t1 = start_chain(server)
    narrowed = ok(exchange(server, "agent-a", t1, scope="docs:read"))
    t_c = delegate(server, "agent-a", t1, "agent-c")
    pending = hand_off(server, "agent-a", t1, "agent-b")
    t_b = ok(redeem(server, "agent-b", hand_off(server, "agent-a", t1, "agent-b")))
    grandchild = delegate(server, "agent-b", t_b, "agent-d")

    revoke(server, "agent-a", t1)

    for token in (t1, narrowed, t_c, pending, t_b, grandchild):
        assert introspect(server, token) == {"active": False}
    refused(server, lambda: exchange(server, "agent-a", t1), error="invalid_request")
    refused(server, lambda: exchange(server, "agent-c", t_c), error="invalid_request")
    refused(server, lambda: redeem(server, "agent-b", pending), error="invalid_request")
    refused(server, lambda: exchange(server, "agent-d", grandchild), error="invalid_request")


Request = tuple[str, Mapping[str, str], Mapping[str, str]]
"""A request made now and sent later: path, form and headers."""


def prepared_exchange(server: LiveServer, agent: str, token: str, **params: str) -> Request:
    """An exchange of ``token`` by ``agent``, its assertion and DPoP proof made now."""
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": token,
        "subject_token_type": ACCESS_TOKEN,
        **assertion(server, agent),
        **params,
    }
    covered = token if claims_of(token).get("cnf") else None
    return "/token", form, {"DPoP": server.proof(DPOP_KEYS[agent], access_token=covered)}


def prepared_revocation(server: LiveServer, agent: str, token: str) -> Request:
    return "/revoke", {"token": token, **assertion(server, agent)}, {}


def race(
    server: LiveServer, requests: list[Request], *, alongside: Callable[[], None] | None = None
) -> list[httpx.Response]:
    """Send all the requests at once, each from its own thread and connection; ``alongside``
    runs in one more thread at the same moment."""
    barrier = threading.Barrier(len(requests) + (alongside is not None), timeout=30)

    def send(request: Request) -> httpx.Response:
        path, form, headers = request
        with httpx.Client(base_url=server.url, timeout=60) as client:
            barrier.wait()
            return client.post(path, data=form, headers=headers)

    def other() -> None:
        assert alongside is not None
        barrier.wait()
        alongside()

    with ThreadPoolExecutor(max_workers=len(requests) + 1) as pool:
        extra = pool.submit(other) if alongside is not None else None
        responses = list(pool.map(send, requests))
        if extra is not None:
            extra.result()
    return responses


def operator_revocation(server: LiveServer, **criterion: str) -> Callable[[], None]:
    """``deputize revoke --task/--user``: the revocation the command line makes, on the database."""

    def revoke() -> None:
        async def run() -> None:
            db = Database(server.settings.async_database_url)
            try:
                async with db.begin() as conn:
                    await revocation.revoke(conn, int(server.clock()), by="cli", **criterion)
            finally:
                await db.dispose()

        asyncio.run(run())

    return revoke


def minted_or_refused(responses: list[httpx.Response]) -> list[str]:
    """The tokens the successful exchanges got; every other one must be ``invalid_request``."""
    minted = []
    for response in responses:
        if response.status_code == 200:
            minted.append(response.json()["access_token"])
        else:
            assert (response.status_code, response.json().get("error")) == (
                400,
                "invalid_request",
            ), response.text
    return minted


def assert_all_revoked_below(server: LiveServer, parent: str, minted: list[str]) -> None:
    children = [
        row for row in ledger(server).values() if row.parent_jti == claims_of(parent)["jti"]
    ]
    assert sorted(row.jti for row in children) == sorted(claims_of(t)["jti"] for t in minted)
    assert [row.jti for row in children if row.revoked_at is None] == []
    for token in minted:
        assert introspect(server, token) == {"active": False}


RACERS = 10


def test_revocation_racing_exchanges_leaves_no_live_child(server: LiveServer) -> None:
    t1 = start_chain(server)
    exchanges = [prepared_exchange(server, "agent-a", t1, scope="docs:read") for _ in range(RACERS)]
    *responses, revoked = race(server, [*exchanges, prepared_revocation(server, "agent-a", t1)])
    assert revoked.status_code == 200, revoked.text
    assert_all_revoked_below(server, t1, minted_or_refused(responses))
    refused(server, lambda: exchange(server, "agent-a", t1), error="invalid_request")


def test_revoking_an_ancestor_racing_exchanges_leaves_no_live_descendant(
    server: LiveServer,
) -> None:
    t1 = start_chain(server)
    t2 = delegate(server, "agent-a", t1, "agent-b")
    exchanges = [prepared_exchange(server, "agent-b", t2, scope="docs:read") for _ in range(RACERS)]
    *responses, revoked = race(server, [*exchanges, prepared_revocation(server, "agent-a", t1)])
    assert revoked.status_code == 200, revoked.text
    assert_all_revoked_below(server, t2, minted_or_refused(responses))
    refused(server, lambda: exchange(server, "agent-b", t2), error="invalid_request")


@pytest.mark.parametrize(
    "criterion",
    [{"task": "quarterly-report"}, {"subject": "alice"}],
    ids=["revoking the task", "revoking the user"],
)
def test_operator_revocation_racing_exchanges_leaves_nothing_live(
    server: LiveServer, criterion: dict[str, str]
) -> None:
    t1 = start_chain(server, task="quarterly-report")
    t2 = delegate(server, "agent-a", t1, "agent-b")
    t3 = delegate(server, "agent-b", t2, "agent-c")
    exchanges = [prepared_exchange(server, "agent-b", t2, scope="docs:read") for _ in range(4)]
    exchanges += [prepared_exchange(server, "agent-c", t3, scope="docs:read") for _ in range(4)]
    exchanges += [prepared_exchange(server, "agent-a", t1, audience="agent-d") for _ in range(2)]
    responses = race(server, exchanges, alongside=operator_revocation(server, **criterion))
    minted = minted_or_refused(responses)
    alices = [row for row in ledger(server).values() if row.subject == "alice"]
    assert [row.jti for row in alices if row.revoked_at is None] == []
    for token in (t1, t2, t3, *minted):
        assert introspect(server, token) == {"active": False}


def test_concurrent_redemptions_of_a_hand_off_succeed_once(server: LiveServer) -> None:
    handoff = handoff_for_b(server)
    responses = race(server, [prepared_exchange(server, "agent-b", handoff) for _ in range(RACERS)])
    assert len(minted_or_refused(responses)) == 1
