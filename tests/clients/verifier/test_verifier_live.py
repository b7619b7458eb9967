"""The verifier against the real server on a loopback port: discovery, JWKS rotation while
running, and revocation through the token status list within its freshness bound.

The server and the verifier share one test clock, so time is moved, never slept through.
"""

from __future__ import annotations

import asyncio

import pytest
from delegation_support import (
    DOCS,
    DPOP_KEYS,
    assertion,
    delegation_config,
    exchange,
    start_chain,
)
from starlette.applications import Starlette

from deputize.keys import SigningKey, create_proof, parse, sign
from deputize.server.keyring import rotate
from deputize.server.settings import async_database_url
from deputize.server.storage.database import Database
from deputize.verifier import InvalidTokenError, Principal, Verifier

from support import Clock, LiveServer, ServerFactory

URL = DOCS + "/documents/1"
STATUS = {"ttl": 60, "server_cache": 5}


def read(verifier: Verifier, clock: Clock, agent: str, token: str) -> Principal:
    proof = create_proof(DPOP_KEYS[agent], "GET", URL, access_token=token, now=clock())
    return verifier.verify(
        authorization=f"DPoP {token}", dpop=proof, method="GET", url=URL, scopes=["docs:read"]
    )


def chain_to_agent_b(server: LiveServer) -> tuple[str, str]:
    """alice -> agent-a (task quarterly-report) -> hand-off -> agent-b (read-only)."""
    t1 = start_chain(server, scope="docs:read docs:write", resource=DOCS, task="quarterly-report")
    handoff = exchange(server, "agent-a", t1, audience="agent-b", scope="docs:read")
    assert handoff.status_code == 200, handoff.text
    redeemed = exchange(server, "agent-b", handoff.json()["access_token"], ath=False)
    assert redeemed.status_code == 200, redeemed.text
    return t1, redeemed.json()["access_token"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(server_factory: ServerFactory, clock: Clock) -> LiveServer:
    return server_factory.start({**delegation_config(), "status_list": STATUS}, clock=clock)


def test_discovers_the_issuer_and_verifies_a_real_chain(server: LiveServer, clock: Clock) -> None:
    verifier = Verifier(server.url, DOCS, clock=clock)
    t1, t2 = chain_to_agent_b(server)
    first = read(verifier, clock, "agent-a", t1)
    assert (first.user, first.actor, first.task) == ("alice", "agent-a", "quarterly-report")
    second = read(verifier, clock, "agent-b", t2)
    assert second.chain.actors == ("agent-a", "agent-b")
    assert second.scopes == {"docs:read"}
    assert verifier.keys.fetches == 1
    assert verifier.status_lists.fetches == 1  # both tokens are in list 0: one fetch
    verifier.close()


def test_a_revoked_task_is_refused_within_the_freshness_bound(
    server: LiveServer, clock: Clock
) -> None:
    verifier = Verifier(server.url, DOCS, clock=clock)
    t1, t2 = chain_to_agent_b(server)
    read(verifier, clock, "agent-a", t1)
    read(verifier, clock, "agent-b", t2)

    revoked = server.client.post("/revoke", data={"token": t1, **assertion(server, "agent-a")})
    assert revoked.status_code == 200, revoked.text

    # Within the bound, the cached list may still say VALID ...
    clock.offset += STATUS["ttl"] - 1
    read(verifier, clock, "agent-b", t2)
    # ... and once server_cache + ttl have passed, both agents are refused.
    clock.offset += STATUS["server_cache"] + 1
    for agent, token in (("agent-a", t1), ("agent-b", t2)):
        with pytest.raises(InvalidTokenError, match="revoked"):
            read(verifier, clock, agent, token)
    verifier.close()


def test_the_async_path_fetches_without_blocking(server: LiveServer, clock: Clock) -> None:
    t1, _ = chain_to_agent_b(server)

    async def main() -> Principal:
        verifier = Verifier(server.url, DOCS, clock=clock)
        try:
            proof = create_proof(DPOP_KEYS["agent-a"], "GET", URL, access_token=t1, now=clock())
            return await verifier.averify(
                authorization=f"DPoP {t1}", dpop=[proof], method="GET", url=URL
            )
        finally:
            await verifier.aclose()

    assert asyncio.run(main()).actor == "agent-a"


@pytest.mark.parametrize("lib", ["httpx", "httpx2"], ids=["with httpx", "with httpx2"])
def test_fetches_with_a_client_of_either_library(
    server: LiveServer, clock: Clock, lib: str
) -> None:
    """Keys and status lists through the caller's own client, sync and async; a fetch that
    fails with that library's transport error is refused as unavailable, not a crash."""
    import importlib

    from deputize.verifier import UnavailableError

    module = importlib.import_module(lib)
    t1, t2 = chain_to_agent_b(server)
    with module.Client(timeout=5) as http:
        verifier = Verifier(server.url, DOCS, clock=clock, http=http)
        assert read(verifier, clock, "agent-a", t1).actor == "agent-a"
        assert verifier.keys.fetches == 1 and verifier.status_lists.fetches == 1
        verifier.close()  # not ours: the client stays open
        assert not http.is_closed

    async def main() -> Principal:
        async with module.AsyncClient(timeout=5) as http:
            verifier = Verifier(server.url, DOCS, clock=clock, async_http=http)
            proof = create_proof(DPOP_KEYS["agent-b"], "GET", URL, access_token=t2, now=clock())
            return await verifier.averify(
                authorization=f"DPoP {t2}", dpop=[proof], method="GET", url=URL
            )

    assert asyncio.run(main()).chain.actors == ("agent-a", "agent-b")
    with module.Client(timeout=5) as http:
        unreachable = Verifier("http://127.0.0.1:9", DOCS, clock=clock, http=http)
        with pytest.raises(UnavailableError):
            unreachable.keys.refresh(http)


def test_status_list_endpoint(server: LiveServer) -> None:
    start_chain(server, resource=DOCS)
    response = server.client.get("/statuslists/0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/statuslist+jwt"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert server.client.get("/statuslists/99").status_code == 404
    assert server.client.get("/statuslists/-1").status_code == 404


def test_unknown_kid_refetches_at_most_once_per_interval(server: LiveServer, clock: Clock) -> None:
    verifier = Verifier(server.url, DOCS, clock=clock, key_refresh_interval=30)
    t1, _ = chain_to_agent_b(server)
    read(verifier, clock, "agent-a", t1)
    forged = sign(
        {"iss": server.url, "sub": "alice", "aud": DOCS}, SigningKey.generate(), typ="at+jwt"
    )
    for _ in range(3):
        with pytest.raises(InvalidTokenError, match="unknown key"):
            verifier.verify(authorization=f"DPoP {forged}", dpop="x", method="GET", url=URL)
    assert verifier.keys.fetches == 1  # the rate limit held: no refetch within 30 s
    clock.offset += 31
    with pytest.raises(InvalidTokenError, match="unknown key"):
        verifier.verify(authorization=f"DPoP {forged}", dpop="x", method="GET", url=URL)
    assert verifier.keys.fetches == 2
    verifier.close()


def test_jwks_rotation_while_running(
    server_factory: ServerFactory, server: LiveServer, clock: Clock
) -> None:
    """Keys rotate twice (`deputize keys rotate --force`), so the server signs with a key the
    running verifier has never seen; it refetches the JWKS and accepts the token."""
    verifier = Verifier(server.url, DOCS, clock=clock)
    t1, _ = chain_to_agent_b(server)
    read(verifier, clock, "agent-a", t1)

    async def rotate_twice_and_reload() -> str:
        db = Database(async_database_url(server_factory.database_url))
        try:
            for _ in range(2):
                async with db.begin() as conn:
                    row = await rotate(conn, server.settings, int(clock()), force=True)
            # What the server's maintenance task does every keys.refresh_interval, done now.
            app = server.server.config.app
            assert isinstance(app, Starlette)
            await app.state.ctx.keyring.refresh(db, int(clock()))
        finally:
            await db.dispose()
        return row.kid

    new_kid = asyncio.run(rotate_twice_and_reload())
    token = start_chain(server, resource=DOCS)
    assert parse(token, algorithms=["ES256"], typ="at+jwt").kid == new_kid
    clock.offset += 31  # past the refetch rate limit
    assert read(verifier, clock, "agent-a", token).user == "alice"
    assert verifier.keys.fetches == 2
    # The old chain, signed with a now-retired key, still verifies.
    assert read(verifier, clock, "agent-a", t1).actor == "agent-a"
    verifier.close()
