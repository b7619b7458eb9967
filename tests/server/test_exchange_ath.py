"""Rule 1 at token exchange: the proof's key is the subject token's ``cnf.jkt``; ``ath`` is
checked when present and required only with ``dpop.require_subject_token_ath`` (decision 0010).

Each row sets up what a client holds and returns the exchange it sends; it runs under both
settings, over real HTTP, and expects a token (bound to the proof's key) or the error code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from delegation_support import (
    DPOP_KEYS,
    JWT,
    claims_of,
    delegation_config,
    exchange,
    ledger,
    start_chain,
    user_token,
)

from deputize.keys import SigningKey

from support import LiveServer, ServerFactory

Send = Callable[[], httpx.Response]

ROGUE_KEY = SigningKey.generate("ES256")
ALICE_KEY = SigningKey.generate("ES256")
"""The key alice's app binds her identity-provider token to (``cnf.jkt``)."""
ISSUED = "issued"


@dataclass(frozen=True)
class Row:
    prepare: Callable[[LiveServer], tuple[Send, str]]
    """Sets up the subject token; returns the exchange and the key thumbprint it proves."""
    by_default: str
    """``issued`` or the error code with the default settings."""
    strict: str
    """The same with ``dpop.require_subject_token_ath: true``."""


def holder_without_ath(server: LiveServer) -> tuple[Send, str]:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, ath=False), DPOP_KEYS["agent-a"].kid


def holder_with_ath(server: LiveServer) -> tuple[Send, str]:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, ath=True), DPOP_KEYS["agent-a"].kid


def other_key_without_ath(server: LiveServer) -> tuple[Send, str]:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, dpop_key=ROGUE_KEY, ath=False), ROGUE_KEY.kid


def other_key_with_ath(server: LiveServer) -> tuple[Send, str]:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, dpop_key=ROGUE_KEY, ath=True), ROGUE_KEY.kid


def holder_with_ath_of_another_token(server: LiveServer) -> tuple[Send, str]:
    t1, other = start_chain(server), start_chain(server)
    key = DPOP_KEYS["agent-a"]
    return (
        lambda: exchange(server, "agent-a", t1, proof=server.proof(key, access_token=other)),
        key.kid,
    )


def holder_replaying_a_proof_without_ath(server: LiveServer) -> tuple[Send, str]:
    """The window a proof without ``ath`` leaves: the same proof sent again, even for the very
    token it was made for, is refused (its ``jti`` is remembered, RFC 9449 §11.1)."""
    t1 = start_chain(server)
    key = DPOP_KEYS["agent-a"]
    proof = server.proof(key)
    exchange(server, "agent-a", t1, proof=proof, scope="docs:read")
    return lambda: exchange(server, "agent-a", t1, proof=proof, scope="docs:read"), key.kid


def stolen_token_and_key_without_ath_by_another_client(server: LiveServer) -> tuple[Send, str]:
    """Without ``ath`` the proof names no token; client authentication still binds the token
    to its holder, so another client with the holder's key and token gets nothing."""
    t1 = start_chain(server)
    key = DPOP_KEYS["agent-a"]
    return lambda: exchange(server, "agent-b", t1, dpop_key=key, ath=False), key.kid


def persons_bound_token_without_ath(server: LiveServer) -> tuple[Send, str]:
    token = user_token(cnf={"jkt": ALICE_KEY.kid})
    return (
        lambda: exchange(server, "agent-a", token, subject_type=JWT, dpop_key=ALICE_KEY),
        ALICE_KEY.kid,
    )


def persons_bound_token_with_agents_key(server: LiveServer) -> tuple[Send, str]:
    token = user_token(cnf={"jkt": ALICE_KEY.kid})
    key = DPOP_KEYS["agent-a"]
    return lambda: exchange(server, "agent-a", token, subject_type=JWT), key.kid


ROWS = [
    pytest.param(Row(holder_without_ath, ISSUED, "invalid_dpop_proof"),
                 id="the holder's key without ath"),
    pytest.param(Row(holder_with_ath, ISSUED, ISSUED),
                 id="the holder's key with the subject token's ath"),
    pytest.param(Row(other_key_without_ath, "invalid_dpop_proof", "invalid_dpop_proof"),
                 id="another key without ath"),
    pytest.param(Row(other_key_with_ath, "invalid_dpop_proof", "invalid_dpop_proof"),
                 id="another key with the subject token's ath"),
    pytest.param(Row(holder_with_ath_of_another_token, "invalid_dpop_proof",
                     "invalid_dpop_proof"),
                 id="the holder's key with the ath of another token"),
    pytest.param(Row(holder_replaying_a_proof_without_ath, "invalid_dpop_proof",
                     "invalid_dpop_proof"),
                 id="the holder's proof without ath sent a second time"),
    pytest.param(Row(stolen_token_and_key_without_ath_by_another_client, "invalid_request",
                     "invalid_dpop_proof"),
                 id="another client with the holder's token and key, without ath"),
    pytest.param(Row(persons_bound_token_without_ath, ISSUED, "invalid_dpop_proof"),
                 id="a person's key-bound token proved by its key without ath"),
    pytest.param(Row(persons_bound_token_with_agents_key, "invalid_dpop_proof",
                     "invalid_dpop_proof"),
                 id="a person's key-bound token proved by the agent's key"),
]  # fmt: skip

SETTINGS = [
    pytest.param(False, id="by default"),
    pytest.param(True, id="with require_subject_token_ath"),
]


def _start(factory: ServerFactory, *, strict: bool) -> LiveServer:
    config: dict[str, Any] = delegation_config()
    if strict:
        config["dpop"] = {"require_subject_token_ath": True}
    return factory.start(config)


@pytest.mark.parametrize("strict", SETTINGS)
@pytest.mark.parametrize("row", ROWS)
def test_exchange_proof_key_must_match_and_ath_is_checked_when_present(
    server_factory: ServerFactory, row: Row, strict: bool
) -> None:
    server = _start(server_factory, strict=strict)
    assert server.settings.dpop_require_subject_token_ath is strict
    send, jkt = row.prepare(server)
    expected = row.strict if strict else row.by_default
    before = ledger(server)
    response = send()
    if expected == ISSUED:
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "DPoP"
        assert claims_of(response.json()["access_token"])["cnf"] == {"jkt": jkt}
        return
    assert response.status_code == 400, response.text
    assert response.json()["error"] == expected, response.text
    assert ledger(server).keys() == before.keys(), "a refused exchange issued a token"
