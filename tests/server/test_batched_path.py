"""PostgreSQL's batched hot path (storage/batched.py) against the ordinary transaction.

Both databases run every test: on SQLite each request is decided on the ordinary path, on
PostgreSQL successful requests commit through ``deputize_apply_batch`` and anything it refuses is
decided again on the ordinary path.  The outcomes — responses, ledger, audit trail — must be
the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from delegation_support import (
    AUTH_KEYS,
    DPOP_KEYS,
    JWT,
    TOKEN_EXCHANGE,
    claims_of,
    exchange,
    ledger,
    start,
    start_chain,
    user_token,
)
from sqlalchemy import text

from deputize.server.storage import audit
from deputize.server.storage.batched import HotPathStats
from deputize.server.storage.database import Database

from support import JWT_BEARER, LiveServer, ServerFactory, assert_error


def _stats(server: LiveServer) -> HotPathStats | None:
    """The running server's hot-path counters; None on SQLite, which has no hot path."""
    app: Any = server.server.config.app
    hot_path = app.state.ctx.db.hot_path
    return None if hot_path is None else hot_path.stats


def _audit(server: LiveServer) -> tuple[audit.Verification, list[dict[str, Any]]]:
    async def load() -> tuple[audit.Verification, list[dict[str, Any]]]:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                return await audit.verify(conn), await audit.query(conn)
        finally:
            await db.dispose()

    return asyncio.run(load())


def _sql(server: LiveServer, statement: str, **params: Any) -> None:
    async def run() -> None:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                await conn.execute(text(statement), params)
        finally:
            await db.dispose()

    asyncio.run(run())


def _everyone(factory: ServerFactory) -> LiveServer:
    return start(factory, grants=[{"subject": "*", "agents": ["agent-a"]}])


def test_hot_path_audit_hashes_match_the_verifier(server_factory: ServerFactory) -> None:
    """PostgreSQL hashes audit entries in SQL; `deputize audit --verify` recomputes them in
    Python.  Text that JSON escapes or that is not ASCII must hash the same on both sides."""
    server = _everyone(server_factory)
    subjects = ["zoë", 'quote"back\\slash', "日本語-ユーザー", "emoji-🦊", "plain"]
    for sub in subjects:
        response = exchange(
            server, "agent-a", user_token(sub), subject_type=JWT, task=f"tâche {sub}"
        )
        assert response.status_code == 200, response.text
        parent = response.json()["access_token"]
        child = exchange(server, "agent-a", parent, scope="docs:read")
        assert child.status_code == 200, child.text
        assert claims_of(child.json()["access_token"])["sub"] == sub

    verification, entries = _audit(server)
    assert verification.ok, verification.problems
    issued = [e for e in entries if e["event"] == audit.TOKEN_ISSUED]
    assert sorted({e["subject"] for e in issued}) == sorted(subjects)
    assert {e["task"] for e in issued} == {f"tâche {sub}" for sub in subjects}
    stats = _stats(server)
    if stats is not None:
        assert stats.applied >= 2 * len(subjects)
        assert stats.conflicts == 0


def test_hot_path_records_what_the_ordinary_path_records(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    parent = start_chain(server, scope="docs:read docs:write", task="t-1")
    response = exchange(server, "agent-a", parent, scope="docs:read")
    assert response.status_code == 200, response.text
    child = claims_of(response.json()["access_token"])
    record = ledger(server)[child["jti"]]
    assert record.parent_jti == claims_of(parent)["jti"]
    assert (record.kind, record.client_id, record.subject, record.task) == (
        "delegation",
        "agent-a",
        "alice",
        "t-1",
    )
    assert record.jkt == DPOP_KEYS["agent-a"].kid  # a key's kid is its thumbprint
    assert record.expires_at == child["exp"]
    assert record.revoked_at is None and record.redeemed_at is None


def test_replayed_assertion_is_refused_and_audited(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    parent = start_chain(server)
    assertion = server.assertion("agent-a", AUTH_KEYS["agent-a"])
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": parent,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }

    def send() -> Any:
        proof = server.proof(DPOP_KEYS["agent-a"], access_token=parent)
        return server.client.post("/token", data=form, headers={"DPoP": proof})

    assert send().status_code == 200
    body = assert_error(send(), 401, "invalid_client")
    assert "already been used" in body["error_description"]
    stats = _stats(server)
    if stats is not None:
        assert stats.conflicts == 1  # found by deputize_apply_batch, refused by the ordinary path
    verification, entries = _audit(server)
    assert verification.ok, verification.problems
    replays = [
        e
        for e in entries
        if e["event"] == audit.CLIENT_AUTH_FAILED and "already been used" in e["reason"]
    ]
    assert len(replays) == 1


def test_replayed_proof_is_refused(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    parent = start_chain(server)
    proof = server.proof(DPOP_KEYS["agent-a"], access_token=parent)
    assert exchange(server, "agent-a", parent, proof=proof).status_code == 200
    body = assert_error(exchange(server, "agent-a", parent, proof=proof), 400, "invalid_dpop_proof")
    assert "already been used" in body["error_description"]


def test_a_refused_request_still_uses_up_its_assertion(server_factory: ServerFactory) -> None:
    """A refusal on the hot path is decided again on the ordinary path, which keeps the
    assertion's jti: replaying the refused request's assertion is a replay."""
    server = start(server_factory)
    parent = start_chain(server, scope="docs:read")
    assertion = server.assertion("agent-a", AUTH_KEYS["agent-a"])
    refused = exchange(
        server, "agent-a", parent, scope="docs:write",
        client_assertion_type=JWT_BEARER, client_assertion=assertion,
    )  # fmt: skip
    assert_error(refused, 400, "invalid_scope")
    replayed = exchange(
        server, "agent-a", parent, scope="docs:read",
        client_assertion_type=JWT_BEARER, client_assertion=assertion,
    )  # fmt: skip
    assert_error(replayed, 401, "invalid_client")


def test_revoked_parent_is_refused_on_both_paths(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    parent = start_chain(server)
    child = exchange(server, "agent-a", parent, scope="docs:read")
    assert child.status_code == 200
    response = server.client.post(
        "/revoke",
        data={"token": parent, "client_assertion_type": JWT_BEARER,
              "client_assertion": server.assertion("agent-a", AUTH_KEYS["agent-a"])},
    )  # fmt: skip
    assert response.status_code == 200
    body = assert_error(exchange(server, "agent-a", parent), 400, "invalid_request")
    assert "revoked" in body["error_description"]
    grandchild = exchange(server, "agent-a", child.json()["access_token"])
    assert_error(grandchild, 400, "invalid_request")


def _edit_row(server: LiveServer, token: str, column: str, value: str) -> None:
    statement = f"UPDATE issued_tokens SET {column} = :value WHERE jti = :jti"  # noqa: S608
    _sql(server, statement, value=value, jti=claims_of(token)["jti"])


def test_the_ledger_not_the_claims_decides_the_holder(server_factory: ServerFactory) -> None:
    """The hot path does not read a delegation token's row: it confirms at commit that the row
    says what the signed claims say.  A row that disagrees (here edited in the database) sends
    the request to the ordinary path, which reads the row — and the row says the token is
    another agent's."""
    server = start(server_factory)
    parent = start_chain(server)
    _edit_row(server, parent, "client_id", "agent-b")
    assert_error(exchange(server, "agent-a", parent, scope="docs:read"), 400, "invalid_request")
    stats = _stats(server)
    if stats is not None:
        assert (stats.applied, stats.conflicts) == (1, 1)  # the first hop; then the refusal


def test_the_ledger_not_the_claims_decides_the_task(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    parent = start_chain(server, task="t-1")
    _edit_row(server, parent, "task", "t-2")
    response = exchange(server, "agent-a", parent, scope="docs:read")
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["task"] == "t-2"
    stats = _stats(server)
    if stats is not None:
        assert (stats.applied, stats.conflicts) == (1, 1)  # the second hop: ordinary path


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_hot_path_is_used_for_client_credentials(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    stats = _stats(server)
    assert stats is not None
    before = stats.applied
    for _ in range(3):
        response = server.client.post(
            "/token",
            data={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
                  "client_assertion": server.assertion("agent-b", AUTH_KEYS["agent-b"])},
            headers={"DPoP": server.proof(DPOP_KEYS["agent-b"])},
        )  # fmt: skip
        assert response.status_code == 200, response.text
    assert stats.applied == before + 3
