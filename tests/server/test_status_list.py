"""The token status list: every token a resource server can use gets its own index without an
extra database round trip, and every revocation path shows in the signed list."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import pytest
from delegation_support import DOCS, claims_of, delegation_config, exchange, start_chain
from sqlalchemy import event

from deputize.keys import KeySet, parse
from deputize.keys._b64 import b64url_decode
from deputize.server.settings import async_database_url
from deputize.server.storage.database import Database
from deputize.server.storage.request_store import SqlStore
from deputize.server.tokens.revocation import revoke
from deputize.server.tokens.status_list import LIST_SIZE, StatusAllocator

from support import Clock, LiveServer, ServerFactory

SERVER_CACHE = 5


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    config = {**delegation_config(), "status_list": {"ttl": 30, "server_cache": SERVER_CACHE}}
    return server_factory.start(config)


def status_list(server: LiveServer, number: int = 0) -> tuple[dict[str, Any], bytes]:
    response = server.client.get(f"/statuslists/{number}")
    assert response.status_code == 200, response.text
    parsed = parse(response.text, algorithms=["ES256"], typ="statuslist+jwt")
    key = KeySet.from_jwks(server.client.get("/jwks").json()).find(parsed)
    assert key is not None
    claims = dict(parsed.verify(key))
    return claims, zlib.decompress(b64url_decode(claims["status_list"]["lst"]))


def is_revoked(bits: bytes, token: str) -> bool:
    idx = claims_of(token)["status"]["status_list"]["idx"]
    return bool(bits[idx // 8] >> (idx % 8) & 1)


def test_tokens_carry_distinct_status_references(server: LiveServer) -> None:
    tokens = [start_chain(server, resource=DOCS) for _ in range(3)]
    own = server.token({"scope": "read"}, dpop_key=None, client_id="svc-bearer")
    tokens.append(own.json()["access_token"])
    refs = [claims_of(t)["status"]["status_list"] for t in tokens]
    assert {r["uri"] for r in refs} == {f"{server.url}/statuslists/0"}
    assert len({r["idx"] for r in refs}) == 4
    claims, bits = status_list(server)
    assert claims["sub"] == f"{server.url}/statuslists/0"
    assert claims["iss"] == server.url
    assert claims["ttl"] == 30
    assert claims["exp"] > claims["iat"]
    assert claims["status_list"]["bits"] == 1
    assert len(bits) == LIST_SIZE // 8
    assert not any(is_revoked(bits, t) for t in tokens)


def test_handoff_tokens_get_no_status(server: LiveServer) -> None:
    t1 = start_chain(server, resource=DOCS)
    handoff = exchange(server, "agent-a", t1, audience="agent-b", scope="docs:read")
    assert "status" not in claims_of(handoff.json()["access_token"])


@pytest.mark.parametrize(
    "criterion",
    ["jti", "task", "client", "user"],
    ids=lambda c: f"revoking by {c} reaches the list, children included",
)
def test_every_revocation_path_shows_in_the_list(server: LiveServer, criterion: str) -> None:
    t1 = start_chain(server, resource=DOCS, task="quarterly-report")
    handoff = exchange(server, "agent-a", t1, audience="agent-b", scope="docs:read")
    t2 = exchange(server, "agent-b", handoff.json()["access_token"], ath=False).json()[
        "access_token"
    ]
    bystander = start_chain(server, resource=DOCS, task="other-task")
    _, bits = status_list(server)
    assert not is_revoked(bits, t1) and not is_revoked(bits, t2)

    by: dict[str, str] = {
        "jti": {"jti": claims_of(t1)["jti"]},
        "task": {"task": "quarterly-report"},
        "client": {"client_id": "agent-a"},
        "user": {"subject": "alice"},
    }[criterion]

    async def revoke_now() -> int:
        db = Database(server.settings.async_database_url)
        try:
            async with db.begin() as conn:
                return (await revoke(conn, int(server.clock()), by="cli", **by)).rows
        finally:
            await db.dispose()

    assert asyncio.run(revoke_now()) >= 2
    server.clock.offset += SERVER_CACHE + 1  # past the server's own cache of the list
    _, bits = status_list(server)
    assert is_revoked(bits, t1) and is_revoked(bits, t2)
    assert is_revoked(bits, bystander) == (criterion in ("client", "user"))


def test_allocation_is_unique_across_instances_and_costs_no_round_trip(
    database_url: str, server_factory: ServerFactory
) -> None:
    server_factory.start()  # migrates the database

    async def allocate() -> tuple[list[int], int]:
        db = Database(async_database_url(database_url))
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        first, second = StatusAllocator(db, block=8), StatusAllocator(db, block=8)
        try:
            await first.start()
            await second.start()
            before = statements
            async with db.begin() as conn:
                got = [await first.allocate(SqlStore(conn)) for _ in range(3)]
                got += [await second.allocate(SqlStore(conn)) for _ in range(3)]
            during = statements - before
            # Exhaust both blocks: background refills, then the in-transaction fallback.
            async with db.begin() as conn:
                got += [await first.allocate(SqlStore(conn)) for _ in range(40)]
            await first.stop()
            await second.stop()
        finally:
            await db.dispose()
        return got, during

    indexes, statements_during = asyncio.run(allocate())
    assert len(set(indexes)) == len(indexes)
    assert statements_during <= 2  # BEGIN/COMMIT at most: no statement per allocation


def test_unknown_or_future_lists_are_not_found(server: LiveServer) -> None:
    assert server.client.get(f"/statuslists/{1}").status_code == 404
    assert server.client.get("/statuslists/abc").status_code == 404


def test_status_list_follows_the_clock(server_factory: ServerFactory) -> None:
    clock = Clock()
    server = server_factory.start(delegation_config(), clock=clock)
    claims, _ = status_list(server)
    assert claims["ttl"] == 60  # the default
    assert abs(claims["iat"] - clock()) < 5
