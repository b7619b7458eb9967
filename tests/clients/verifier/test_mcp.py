"""deputize.verifier.mcp with the real MCP Python SDK: an MCPServer with one tool, served over
streamable HTTP on a loopback port, called with tokens minted by the real Deputize server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from delegation_support import AUTH_KEYS, DOCS, DPOP_KEYS, delegation_config, user_token
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from verifier_support import ServedApp

from deputize.agent import JWT_TYPE, AsyncAgentClient
from deputize.keys import SigningKey
from deputize.verifier import Verifier
from deputize.verifier.mcp import (
    DeputizeMCP,
    DeputizeTokenVerifier,
    current_principal,
    protect,
)

from support import LiveServer, ServerFactory

RESOURCE = "https://tools.example.com/mcp"
METADATA = "https://tools.example.com/.well-known/oauth-protected-resource/mcp"
BEARER_SECRET = "mcp-bearer-secret-0123456789abcdefghijkl"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    from deputize.server.clients.secrets import hash_secret

    config = delegation_config(
        agent_overrides={"agent-a": {"audiences": [DOCS, RESOURCE]}},
    )
    config["clients"].append(
        {
            "client_id": "mcp-bearer",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": hash_secret(BEARER_SECRET),
            "scopes": ["docs:read"],
            "audiences": [RESOURCE, DOCS],
            "dpop_bound_access_tokens": False,
        }
    )
    return server_factory.start(config)


def mcp_app(issuer: str, base_url: str, *, allow_bearer: bool) -> Any:
    """The three lines of docs/verifier.md, and one tool that reports who called it."""
    deputize = DeputizeMCP(Verifier(issuer, RESOURCE, allow_bearer=allow_bearer))
    server = MCPServer("tools", token_verifier=deputize.token_verifier, auth=deputize.auth)

    @server.tool()
    def whoami() -> dict[str, Any]:
        principal = current_principal()
        token = get_access_token()
        assert principal is not None and token is not None
        return {
            "user": principal.user,
            "actors": list(principal.chain.actors),
            "client_id": token.client_id,
            "subject": token.subject,
            "act": (token.claims or {}).get("act"),
            "scopes": token.scopes,
            "resource": token.resource,
        }

    return deputize.protect(server.streamable_http_app(), base_url=base_url)


@pytest.fixture
def tools(server: LiveServer, request: pytest.FixtureRequest) -> Iterator[ServedApp]:
    allow_bearer: bool = getattr(request, "param", True)
    served = ServedApp(lambda url: mcp_app(server.url, url, allow_bearer=allow_bearer))
    yield served
    served.stop()


def bearer_token(server: LiveServer, resource: str = RESOURCE) -> str:
    response = server.client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "docs:read", "resource": resource},
        auth=("mcp-bearer", BEARER_SECRET),
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    token: str = response.json()["access_token"]
    return token


async def call_whoami(url: str, http: httpx2.AsyncClient) -> dict[str, Any]:
    async with (
        streamable_http_client(url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("whoami", {})
    assert not result.is_error, result
    payload: dict[str, Any] = json.loads(result.content[0].text)  # type: ignore[union-attr]
    return payload


async def verify_alone(server: LiveServer, token: str) -> AccessToken | None:
    """The token verifier on its own, as the SDK's bearer backend calls it (no protect())."""
    verifier = Verifier(server.url, RESOURCE, allow_bearer=True)
    try:
        return await DeputizeTokenVerifier(verifier).verify_token(token)
    finally:
        await verifier.aclose()


def post_initialize(url: str, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(
        url + "/mcp",
        json=INITIALIZE,
        headers={"Accept": "application/json, text/event-stream", **headers},
    )


def test_an_allowed_bearer_token_calls_the_tool(server: LiveServer, tools: ServedApp) -> None:
    token = bearer_token(server)

    async def main() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            return await call_whoami(tools.url, http)

    seen = asyncio.run(main())
    assert seen["user"] == seen["subject"] == seen["client_id"] == "mcp-bearer"
    alone = asyncio.run(verify_alone(server, token))
    assert alone is not None and alone.subject == "mcp-bearer" and alone.resource == RESOURCE
    assert seen["actors"] == [] and seen["act"] is None
    assert seen["scopes"] == ["docs:read"] and seen["resource"] == RESOURCE


def test_an_agent_calls_the_tool_with_dpop_through_protect(
    server: LiveServer, tools: ServedApp
) -> None:
    """The agent SDK's DPoPAuth plugged into the MCP SDK's own httpx2 client."""

    async def main() -> dict[str, Any]:
        async with AsyncAgentClient(
            server.url, "agent-a", client_key=AUTH_KEYS["agent-a"], dpop_key=DPOP_KEYS["agent-a"]
        ) as agent:
            token = await agent.exchange(
                user_token(), subject_token_type=JWT_TYPE, scope="docs:read", resource=RESOURCE
            )
            async with httpx2.AsyncClient(auth=agent.auth(token), timeout=30) as http:
                return await call_whoami(tools.url, http)

    seen = asyncio.run(main())
    assert seen["user"] == seen["subject"] == "alice"
    assert seen["actors"] == ["agent-a"] and seen["act"] == {"sub": "agent-a"}
    assert seen["client_id"] == "agent-a"


@pytest.mark.parametrize("tools", [False], indirect=True, ids=["bearer not allowed"])
def test_bearer_is_refused_unless_the_resource_opts_in(
    server: LiveServer, tools: ServedApp
) -> None:
    response = post_initialize(tools.url, {"Authorization": f"Bearer {bearer_token(server)}"})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="invalid_token"') and "Bearer" not in challenge
    assert f'resource_metadata="{METADATA}"' in challenge
    assert response.json()["error"] == "invalid_token"


def test_a_dpop_bound_token_sent_as_bearer_is_refused(server: LiveServer, tools: ServedApp) -> None:
    async def bound() -> str:
        async with AsyncAgentClient(
            server.url, "agent-a", client_key=AUTH_KEYS["agent-a"], dpop_key=DPOP_KEYS["agent-a"]
        ) as agent:
            token = await agent.exchange(
                user_token(), subject_token_type=JWT_TYPE, scope="docs:read", resource=RESOURCE
            )
            return token.access_token

    token = asyncio.run(bound())
    response = post_initialize(tools.url, {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "DPoP" in response.json()["error_description"]
    # The SDK's own backend, behind the token verifier alone, refuses it too.
    assert asyncio.run(verify_alone(server, token)) is None


def test_a_token_for_another_resource_is_refused(server: LiveServer, tools: ServedApp) -> None:
    token = bearer_token(server, resource=DOCS)
    response = post_initialize(tools.url, {"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert asyncio.run(verify_alone(server, token)) is None


def test_no_token_gets_our_challenge_and_the_metadata_is_public(tools: ServedApp) -> None:
    response = post_initialize(tools.url, {})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP ") and ", Bearer" in challenge
    assert f'resource_metadata="{METADATA}"' in challenge
    document = httpx2.get(tools.url + "/.well-known/oauth-protected-resource/mcp")
    assert document.status_code == 200
    assert document.json()["resource"] == RESOURCE
    assert document.json()["dpop_bound_access_tokens_required"] is False  # bearer is allowed


def test_a_replayed_dpop_request_is_refused(server: LiveServer, tools: ServedApp) -> None:
    key = DPOP_KEYS["agent-a"]

    async def token() -> str:
        async with AsyncAgentClient(
            server.url, "agent-a", client_key=AUTH_KEYS["agent-a"], dpop_key=key
        ) as agent:
            issued = await agent.exchange(
                user_token(), subject_token_type=JWT_TYPE, scope="docs:read", resource=RESOURCE
            )
            return issued.access_token

    access = asyncio.run(token())
    from deputize.keys import create_proof

    proof = create_proof(key, "POST", tools.url + "/mcp", access_token=access)
    headers = {"Authorization": f"DPoP {access}", "DPoP": proof}
    first = post_initialize(tools.url, headers)
    assert first.status_code == 200, first.text
    again = post_initialize(tools.url, headers)
    assert again.status_code == 401
    assert 'error="invalid_dpop_proof"' in again.headers["www-authenticate"]
    stolen = create_proof(
        SigningKey.generate("ES256"), "POST", tools.url + "/mcp", access_token=access
    )
    other_key = post_initialize(tools.url, {"Authorization": f"DPoP {access}", "DPoP": stolen})
    assert other_key.status_code == 401


def test_outside_a_request_there_is_no_principal() -> None:
    assert current_principal() is None


def test_protect_needs_an_absolute_resource() -> None:
    verifier = Verifier("https://auth.example.com", "tools")
    with pytest.raises(ValueError, match="absolute URL"):
        protect(lambda scope, receive, send: None, verifier)  # type: ignore[arg-type,return-value]


def test_a_verified_mark_cannot_be_borrowed() -> None:
    """The mark protect() leaves for the token verifier is a context variable it clears on
    every request: a request without a proof never sees one, and the per-request record that
    current_principal() reads is never taken as a reason to skip a check."""
    from verifier_support import AS_KEY, ISSUER, Clock, make_token

    from deputize.verifier import mcp as deputize_mcp

    clock = Clock()
    bound = make_token(clock, aud=RESOURCE)  # has cnf.jkt
    verifier = Verifier(ISSUER, RESOURCE, jwks={"keys": [AS_KEY.public_jwk()]}, allow_bearer=True)
    principal = verifier.verify(
        authorization=f"Bearer {make_token(clock, aud=RESOURCE, cnf=None)}",
        dpop=None, method="POST", url=RESOURCE,
    )  # fmt: skip
    seen: list[object] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(deputize_mcp._PROTECTED.get())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> tuple[AccessToken | None, list[int]]:
        # As if an earlier request in this context had been verified with this token.
        deputize_mcp._PROTECTED.set((bound, principal))
        deputize_mcp._VERIFIED.set((bound, principal))
        statuses: list[int] = []

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def receive() -> Any:
            return {"type": "http.request", "body": b""}

        app = protect(inner, verifier)
        scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp",
                 "headers": [], "query_string": b""}  # fmt: skip
        await app(scope, receive, send)  # no credentials: the inner app sees no mark
        bearer = [(b"authorization", b"Bearer " + bound.encode())]
        await app({**scope, "headers": bearer}, receive, send)  # refused before the inner app
        deputize_mcp._PROTECTED.set(None)
        return await DeputizeTokenVerifier(verifier).verify_token(bound), statuses

    result, statuses = asyncio.run(main())
    assert seen == [None]
    assert statuses == [204, 401]
    assert result is None  # _VERIFIED is never a pass
