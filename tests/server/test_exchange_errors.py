"""One error code per token-exchange refusal (RFC 8693 §2.2.2), as ``docs/endpoints.md``'s
table says: one row here per row there, sent over real HTTP, and the two tables must agree."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from delegation_support import (
    ACCESS_TOKEN,
    DOCS,
    DPOP_KEYS,
    JWT,
    MAIL,
    TOKEN_EXCHANGE,
    assertion,
    exchange,
    own_token,
    start,
    start_chain,
    user_token,
)

from deputize.keys import SigningKey

from support import LiveServer, ServerFactory

Send = Callable[[], httpx.Response]
ENDPOINTS = Path(__file__).resolve().parents[2] / "docs" / "endpoints.md"
ROGUE_KEY = SigningKey.generate("ES256")


def post(server: LiveServer, form: dict[str, str | list[str]], dpop: str | None) -> httpx.Response:
    data = {"grant_type": TOKEN_EXCHANGE, **assertion(server, "agent-a"), **form}
    return server.client.post("/token", data=data, headers={"DPoP": dpop} if dpop else {})


def missing_parameter(server: LiveServer) -> Send:
    proof = server.proof(DPOP_KEYS["agent-a"])
    return lambda: post(server, {"subject_token_type": JWT}, proof)


def no_proof(server: LiveServer) -> Send:
    return lambda: post(server, {"subject_token": user_token(), "subject_token_type": JWT}, None)


def two_recipients(server: LiveServer) -> Send:
    t1 = start_chain(server)
    form: dict[str, str | list[str]] = {"subject_token": t1, "subject_token_type": ACCESS_TOKEN,
                                        "audience": ["agent-b", "agent-c"]}  # fmt: skip
    return lambda: post(server, form, server.proof(DPOP_KEYS["agent-a"], access_token=t1))


def task_changed(server: LiveServer) -> Send:
    t1 = start_chain(server, task="quarterly-report")
    return lambda: exchange(server, "agent-a", t1, task="wire-transfer")


def expired_subject(server: LiveServer) -> Send:
    return lambda: exchange(server, "agent-a", user_token(lifetime=-120), subject_type=JWT)


def clients_own_token(server: LiveServer) -> Send:
    own = own_token(server, "agent-a")
    return lambda: exchange(server, "agent-a", own)


def another_clients_token(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-b", t1, dpop_key=DPOP_KEYS["agent-a"])


def redeemed_twice(server: LiveServer) -> Send:
    handoff = exchange(server, "agent-a", start_chain(server), audience="agent-b")
    token = handoff.json()["access_token"]
    assert exchange(server, "agent-b", token, ath=False).status_code == 200
    return lambda: exchange(server, "agent-b", token, ath=False)


def persons_token_as_actor(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, actor_token=user_token("agent-b"),
                            actor_token_type=ACCESS_TOKEN)  # fmt: skip


def unauthorised_agent(server: LiveServer) -> Send:
    return lambda: exchange(server, "agent-b", user_token(), subject_type=JWT)


def hand_off_to_itself(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, audience="agent-a")


def resource_beyond_parent(server: LiveServer) -> Send:
    t1 = start_chain(server, resource=DOCS)
    return lambda: exchange(server, "agent-a", t1, resource=MAIL)


def scope_beyond_parent(server: LiveServer) -> Send:
    t1 = start_chain(server, scope="docs:read")
    return lambda: exchange(server, "agent-a", t1, scope="docs:write")


def another_key(server: LiveServer) -> Send:
    t1 = start_chain(server)
    return lambda: exchange(server, "agent-a", t1, dpop_key=ROGUE_KEY)


def failed_client_authentication(server: LiveServer) -> Send:
    t1 = start_chain(server)
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token": t1, "subject_token_type": ACCESS_TOKEN,
            "client_assertion_type": assertion(server, "agent-a")["client_assertion_type"],
            "client_assertion": server.assertion("agent-a", ROGUE_KEY)}  # fmt: skip
    proof = server.proof(DPOP_KEYS["agent-a"], access_token=t1)
    return lambda: server.client.post("/token", data=form, headers={"DPoP": proof})


def grant_not_allowed(server: LiveServer) -> Send:
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token": user_token(), "subject_token_type": JWT}
    proof = server.proof(ROGUE_KEY)
    return lambda: server.client.post(
        "/token", data=form, headers={"DPoP": proof, **server.basic("svc-basic")}
    )


#: Each row of docs/endpoints.md's table, by the words that begin it: what to send, the answer.
ROWS: dict[str, tuple[Callable[[LiveServer], Send], str, int]] = {
    "A required parameter is missing": (missing_parameter, "invalid_request", 400),
    "The request has no DPoP proof": (no_proof, "invalid_request", 400),
    "A hand-off names two agents": (two_recipients, "invalid_request", 400),
    "`task` is malformed": (task_changed, "invalid_request", 400),
    "The subject token is not genuine or not live": (expired_subject, "invalid_request", 400),
    "The subject token is not exchangeable": (clients_own_token, "invalid_request", 400),
    "The subject token is not the requester's": (another_clients_token, "invalid_request", 400),
    "The hand-off was already redeemed": (redeemed_twice, "invalid_request", 400),
    "The actor token is not the actor's own": (persons_token_as_actor, "invalid_request", 400),
    "The person did not authorise the agent": (unauthorised_agent, "invalid_request", 400),
    "The chain would be too deep": (hand_off_to_itself, "invalid_request", 400),
    "An `audience` or `resource` outside": (resource_beyond_parent, "invalid_target", 400),
    "A scope beyond the parent's": (scope_beyond_parent, "invalid_scope", 400),
    "The DPoP proof is not by the subject token's key": (another_key, "invalid_dpop_proof", 400),
    "Client authentication failed": (failed_client_authentication, "invalid_client", 401),
    "The client may not use token exchange": (grant_not_allowed, "unauthorized_client", 400),
}


def documented() -> list[tuple[str, str, int]]:
    section = ENDPOINTS.read_text().split("### Token exchange refusals", 1)[1].split("\n## ", 1)[0]
    return [
        (reason, error, int(status))
        for reason, error, status in re.findall(
            r"^\| (.+?) \| `([a-z_]+)` \| (\d+) \|$", section, re.M
        )
    ]


def test_the_table_in_the_docs_is_the_table_tested() -> None:
    rows = documented()
    assert len(rows) == len(ROWS)
    for (reason, error, status), (start_of_row, (_, code, expected)) in zip(
        rows, ROWS.items(), strict=True
    ):
        assert reason.startswith(start_of_row), (reason, start_of_row)
        assert (error, status) == (code, expected), reason


@pytest.mark.parametrize("row", list(ROWS), ids=[f"{r}: {ROWS[r][1]}" for r in ROWS])
def test_each_refusal_has_its_one_code(server_factory: ServerFactory, row: str) -> None:
    prepare, error, status = ROWS[row]
    server = start(server_factory)
    response = prepare(server)()
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
