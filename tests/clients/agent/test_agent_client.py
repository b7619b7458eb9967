"""The agent SDK against the real server on a loopback port (and a real resource server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from delegation_support import AUTH_KEYS, DOCS, DPOP_KEYS, delegation_config, user_token
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from verifier_support import ServedApp

from deputize.agent import (
    JWT_TYPE,
    AgentClient,
    AgentError,
    AsyncAgentClient,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    ResourceError,
    Token,
    raise_for_resource_error,
)
from deputize.keys import SigningKey
from deputize.verifier import NonceSource, Verifier
from deputize.verifier.starlette import DeputizeMiddleware, requires

from support import SECRETS, Clock, LiveServer, ServerFactory

#: The agent works with either HTTP library: httpx (its default) and httpx2 (the MCP SDK's).
LIBRARIES = pytest.mark.parametrize("lib", [httpx, httpx2], ids=["with httpx", "with httpx2"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(server_factory: ServerFactory, clock: Clock) -> LiveServer:
    return server_factory.start(delegation_config(), clock=clock)


def agent(server: LiveServer, name: str, clock: Clock | None = None) -> AgentClient:
    return AgentClient(
        server.url, name, client_key=AUTH_KEYS[name], dpop_key=DPOP_KEYS[name],
        clock=clock or Clock(),
    )  # fmt: skip


def test_client_credentials_with_private_key_jwt_and_nonce_retry(server: LiveServer) -> None:
    with agent(server, "agent-a") as a:
        token = a.client_credentials(scope="docs:read", resource=DOCS)
        assert token.bound and token.token_type == "DPoP"
        assert token.claims["cnf"] == {"jkt": DPOP_KEYS["agent-a"].kid}
        assert token.scope == ("docs:read",)
        # The nonce learnt from the first refusal is kept: the cached token needs no request,
        # and a new one needs no second round trip.
        assert a.client_credentials(scope="docs:read", resource=DOCS) is token
        assert a._core.nonces


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_secret_authentication(server: LiveServer, method: str) -> None:
    client_id = "svc-basic" if method == "client_secret_basic" else "svc-post"
    with AgentClient(
        server.url, client_id, client_secret=SECRETS[client_id], auth_method=method
    ) as svc:
        assert svc.client_credentials(scope="read").claims["client_id"] == client_id


def test_a_chain_with_every_kind_of_hop(server: LiveServer, clock: Clock) -> None:
    a, b, c = (agent(server, name, clock) for name in ("agent-a", "agent-b", "agent-c"))
    t1 = a.exchange(
        user_token(), subject_token_type=JWT_TYPE, scope=["docs:read", "docs:write"],
        resource=DOCS, task="quarterly-report",
    )  # fmt: skip
    assert t1.claims["act"] == {"sub": "agent-a"} and t1.claims["task"] == "quarterly-report"
    handoff = a.hand_off(t1, to="agent-b", scope="docs:read")
    assert handoff.token_type == "N_A" and not handoff.bound
    t2 = b.redeem(handoff)
    assert t2.claims["act"] == {"sub": "agent-b", "act": {"sub": "agent-a"}}
    assert t2.scope == ("docs:read",)
    t3 = b.delegate(t2, actor_token=c.client_credentials(resource=DOCS))
    assert t3.claims["act"]["sub"] == "agent-c"
    assert t3.claims["cnf"] == {"jkt": DPOP_KEYS["agent-c"].kid}
    with pytest.raises(InvalidRequestError, match="already been used"):
        b.redeem(handoff)
    for client in (a, b, c):
        client.close()


def test_cached_until_near_expiry_then_re_exchanged_from_the_parent(
    server: LiveServer, clock: Clock
) -> None:
    with agent(server, "agent-a", clock) as a:
        parent = user_token()
        first = a.exchange(parent, subject_token_type=JWT_TYPE, resource=DOCS)
        assert a.exchange(parent, subject_token_type=JWT_TYPE, resource=DOCS) is first
        clock.offset += 300 - 29  # within refresh_margin (30 s) of expiry
        second = a.exchange(parent, subject_token_type=JWT_TYPE, resource=DOCS)
        assert second.access_token != first.access_token
        assert second.claims["jti"] != first.claims["jti"]


def test_errors_are_typed_with_code_and_description(server: LiveServer) -> None:
    with agent(server, "agent-a") as a:
        t1 = a.exchange(user_token(), subject_token_type=JWT_TYPE, scope="docs:read")
        with pytest.raises(InvalidScopeError) as caught:
            a.exchange(t1, scope="docs:read docs:write")
        assert caught.value.error_code == "invalid_scope"
        assert caught.value.status_code == 400
        assert caught.value.description and "docs:write" in caught.value.description
    impostor = AgentClient(
        server.url, "agent-a", client_key=SigningKey.generate(), dpop_key=DPOP_KEYS["agent-a"]
    )
    with impostor, pytest.raises(InvalidClientError):
        impostor.client_credentials()


@pytest.fixture
def resource(server: LiveServer) -> Iterator[ServedApp]:
    """A documents API that needs RS nonces, verifying with deputize.verifier."""

    async def read(request: Request) -> Response:
        principal = request.state.principal
        return JSONResponse({"user": principal.user, "actor": principal.actor})

    async def write(request: Request) -> Response:
        return JSONResponse({"written": True})

    def app_for(base_url: str) -> Starlette:
        verifier = Verifier(server.url, DOCS, nonces=NonceSource(lifetime=60))

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await verifier.aclose()

        return Starlette(
            routes=[
                Route("/documents/1", requires("docs:read")(read), methods=["GET"]),
                Route("/documents/1", requires("docs:write")(write), methods=["PUT"]),
            ],
            middleware=[Middleware(DeputizeMiddleware, verifier=verifier, base_url=base_url)],
            lifespan=lifespan,
        )

    served = ServedApp(app_for)
    yield served
    served.stop()


@LIBRARIES
def test_dpop_auth_at_a_resource_server_with_nonce_retry(
    server: LiveServer, resource: ServedApp, lib: Any
) -> None:
    with lib.Client(timeout=30) as own, AgentClient(
        server.url, "agent-a", client_key=AUTH_KEYS["agent-a"], dpop_key=DPOP_KEYS["agent-a"],
        http=own,
    ) as a:  # fmt: skip
        parent = user_token()
        auth = a.auth_for(parent, subject_token_type=JWT_TYPE, scope="docs:read", resource=DOCS)
        with lib.Client(base_url=resource.url, auth=auth) as http:
            first = http.get("/documents/1")  # 401 use_dpop_nonce, retried transparently
            assert first.status_code == 200, first.text
            assert first.json() == {"user": "alice", "actor": "agent-a"}
            assert http.get("/documents/1").status_code == 200
            refused = http.put("/documents/1", json={})
            assert refused.status_code == 403
            with pytest.raises(ResourceError) as caught:
                raise_for_resource_error(refused)
            assert caught.value.error_code == "insufficient_scope"


@LIBRARIES
def test_async_client_end_to_end(server: LiveServer, resource: ServedApp, lib: Any) -> None:
    async def main() -> tuple[Token, int]:
        async with lib.AsyncClient(timeout=30) as own, AsyncAgentClient(
            server.url, "agent-a", client_key=AUTH_KEYS["agent-a"], dpop_key=DPOP_KEYS["agent-a"],
            http=own,
        ) as a:  # fmt: skip
            token = await a.exchange(
                user_token(), subject_token_type=JWT_TYPE, scope="docs:read", resource=DOCS
            )
            async with lib.AsyncClient(base_url=resource.url, auth=a.auth(token)) as http:
                response = await http.get("/documents/1")
                # auth_for with an async client: the exchange runs on the event loop.
                renewing = a.auth_for(
                    user_token(), subject_token_type=JWT_TYPE, scope="docs:read", resource=DOCS
                )
                again = await http.get("/documents/1", auth=renewing)
                assert again.status_code == 200, again.text
            handoff = await a.hand_off(token, to="agent-b")
        async with lib.AsyncClient(timeout=30) as own, AsyncAgentClient(
            server.url, "agent-b", client_key=AUTH_KEYS["agent-b"], dpop_key=DPOP_KEYS["agent-b"],
            http=own,
        ) as b:  # fmt: skip
            redeemed = await b.redeem(handoff)
        return redeemed, response.status_code

    redeemed, status = asyncio.run(main())
    assert status == 200
    assert redeemed.claims["act"]["sub"] == "agent-b"


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [("10" + "0" * 400, 60.0), ("true", 60.0), ('"3600"', 60.0), ("120.5", 120.5)],
    ids=[
        "an expires_in too large for a float counts as absent",
        "a boolean expires_in counts as absent",
        "a string expires_in counts as absent",
        "a fractional expires_in is kept",
    ],
)
def test_a_strange_expires_in_from_the_server_is_not_a_crash(
    expires_in: str, lifetime: float
) -> None:
    """The SDK reads a token response it cannot trust to be well-formed: an ``expires_in``
    that is no usable number falls back to 60 s (as when it is missing) instead of raising."""

    def make_app(url: str) -> Starlette:
        async def metadata(request: Request) -> Response:
            return JSONResponse({"issuer": url, "token_endpoint": url + "/token"})

        async def token(request: Request) -> Response:
            body = f'{{"access_token": "t", "token_type": "DPoP", "expires_in": {expires_in}}}'
            return Response(body, media_type="application/json")

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/token", token, methods=["POST"]),
            ]
        )

    served = ServedApp(make_app)
    now = 1_800_000_000.0
    try:
        client = AgentClient(
            served.url, "agent", client_secret="s", auth_method="client_secret_post",
            clock=lambda: now,
        )  # fmt: skip
        with client:
            token = client.client_credentials()
        assert token.access_token == "t"
        assert token.expires_at == now + lifetime
    finally:
        served.stop()


_DEEP = "[" * 100_000 + "]" * 100_000  # legal JSON; ``json.loads`` raises RecursionError


@pytest.mark.parametrize("where", ["metadata", "token error", "token success", "resource nonce"])
def test_json_nested_too_deep_is_an_error_of_the_sdk_not_a_crash(where: str) -> None:
    """Every JSON body the SDK reads came over the network: a body nested deeper than the
    parser's stack used to escape as ``RecursionError`` from any of these reads.  And a
    resource server's 400 carrying a ``DPoP-Nonce`` header made ``DPoPAuth`` read a body httpx
    had not read (``ResponseNotRead``); only a 401 challenge asks for a retry there."""

    def make_app(url: str) -> Starlette:
        async def metadata(request: Request) -> Response:
            if where == "metadata":
                return Response(_DEEP, media_type="application/json")
            return JSONResponse({"issuer": url, "token_endpoint": url + "/token"})

        async def token(request: Request) -> Response:
            if where == "token success":
                return Response(_DEEP, media_type="application/json")
            if where == "token error":
                return Response(_DEEP, status_code=400, media_type="application/json")
            body = '{"access_token": "t", "token_type": "DPoP", "expires_in": 60}'
            return Response(body, media_type="application/json")

        async def document(request: Request) -> Response:
            headers = {"DPoP-Nonce": "n"}
            return Response(_DEEP, status_code=400, media_type="application/json", headers=headers)

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/token", token, methods=["POST"]),
                Route("/document", document),
            ]
        )

    served = ServedApp(make_app)
    try:
        client = AgentClient(
            served.url, "agent", client_secret="s", auth_method="client_secret_post"
        )
        with client:
            if where == "resource nonce":
                with httpx.Client(auth=client.auth("t")) as http:
                    assert http.get(served.url + "/document").status_code == 400  # not retried
            else:
                with pytest.raises(AgentError):
                    client.client_credentials()
    finally:
        served.stop()
