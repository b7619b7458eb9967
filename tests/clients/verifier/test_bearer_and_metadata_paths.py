"""Bearer tokens only where the resource opts in (never a DPoP-bound one), and RFC 9728
path-aware metadata in the Starlette and FastAPI adapters, in-process with real tokens.

No ``from __future__ import annotations``: FastAPI reads the annotations of nested endpoints.
"""

import asyncio
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from verifier_support import AS_KEY, ISSUER, Clock, make_proof, make_token

from deputize.verifier import InsufficientScopeError, InvalidTokenError, Principal, Verifier
from deputize.verifier.fastapi import DeputizeAuth
from deputize.verifier.metadata import metadata_path, metadata_url
from deputize.verifier.starlette import DeputizeMiddleware, metadata_route

ORIGIN = "https://tools.example.com"
MCP = ORIGIN + "/mcp"
MCP_METADATA = ORIGIN + "/.well-known/oauth-protected-resource/mcp"
ROOT_METADATA = ORIGIN + "/.well-known/oauth-protected-resource"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(clock: Clock, audience: str = MCP, **options: Any) -> Verifier:
    return Verifier(ISSUER, audience, jwks={"keys": [AS_KEY.public_jwk()]}, clock=clock, **options)


def bearer_token(clock: Clock, **claims: Any) -> str:
    """A token with no cnf.jkt, as Deputize mints for a client that does not bind a key."""
    fields: dict[str, Any] = {"aud": MCP, "cnf": None, "act": None, "sub": "svc", **claims}
    return make_token(clock, client_id="svc", **fields)


# --- the Verifier's bearer opt-in ---------------------------------------------------------------


def test_a_bearer_token_is_accepted_only_when_the_resource_allows_it(clock: Clock) -> None:
    token = bearer_token(clock)
    with pytest.raises(InvalidTokenError, match="DPoP-bound tokens only"):
        verifier(clock).verify(authorization=f"Bearer {token}", dpop=None, method="GET", url=MCP)
    principal = verifier(clock, allow_bearer=True).verify(
        authorization=f"bearer {token}", dpop=None, method="GET", url=MCP
    )
    assert (principal.user, principal.client_id, principal.jkt) == ("svc", "svc", None)


def test_a_dpop_bound_token_sent_as_bearer_is_always_refused(clock: Clock) -> None:
    token = make_token(clock, aud=MCP)  # cnf.jkt present
    v = verifier(clock, allow_bearer=True)
    with pytest.raises(InvalidTokenError, match="must be sent with DPoP"):
        v.verify(authorization=f"Bearer {token}", dpop=None, method="GET", url=MCP)
    # ... even with its valid proof alongside.
    proof = make_proof(clock, token, url=MCP)
    with pytest.raises(InvalidTokenError, match="must be sent with DPoP"):
        v.verify(authorization=f"Bearer {token}", dpop=proof, method="GET", url=MCP)


def test_an_unbound_token_cannot_pose_as_dpop(clock: Clock) -> None:
    token = bearer_token(clock)
    proof = make_proof(clock, token, url=MCP)
    with pytest.raises(InvalidTokenError, match="not DPoP-bound"):
        verifier(clock, allow_bearer=True).verify(
            authorization=f"DPoP {token}", dpop=proof, method="GET", url=MCP
        )


def test_a_bearer_token_still_meets_audience_expiry_and_scope(clock: Clock) -> None:
    v = verifier(clock, allow_bearer=True)
    other = bearer_token(clock, aud="https://other.example.com")
    with pytest.raises(InvalidTokenError):
        v.verify(authorization=f"Bearer {other}", dpop=None, method="GET", url=MCP)
    expired = bearer_token(clock, exp=int(clock()) - 120)
    with pytest.raises(InvalidTokenError):
        v.verify(authorization=f"Bearer {expired}", dpop=None, method="GET", url=MCP)
    with pytest.raises(InsufficientScopeError):
        v.verify(
            authorization=f"Bearer {bearer_token(clock)}", dpop=None, method="GET", url=MCP,
            scopes=["docs:write"],
        )  # fmt: skip


# --- RFC 9728 §3.1 / §5.1: the metadata path follows the resource's path ----------------------


@pytest.mark.parametrize(
    ("resource", "path", "url"),
    [
        (MCP, "/.well-known/oauth-protected-resource/mcp", MCP_METADATA),
        (MCP + "/", "/.well-known/oauth-protected-resource/mcp", MCP_METADATA),
        (ORIGIN, "/.well-known/oauth-protected-resource", ROOT_METADATA),
        (ORIGIN + "/", "/.well-known/oauth-protected-resource", ROOT_METADATA),
    ],
    ids=["a resource with a path", "a trailing slash", "no path", "only a slash"],
)
def test_metadata_path_and_url(resource: str, path: str, url: str) -> None:
    assert metadata_path(resource) == path
    assert metadata_url(resource) == url


def starlette_app(clock: Clock, resource: str = MCP, **options: Any) -> Starlette:
    async def tool(request: Request) -> Response:
        principal: Principal = request.state.principal
        return JSONResponse({"user": principal.user})

    return Starlette(
        routes=[
            Route("/mcp", tool, methods=["GET", "POST"]),
            Route("/secret", tool),
            metadata_route(resource, [ISSUER]),
        ],
        middleware=[
            Middleware(
                DeputizeMiddleware, verifier=verifier(clock, audience=resource, **options),
                base_url=ORIGIN, resource=resource,
            )
        ],
    )  # fmt: skip


def fastapi_app(clock: Clock, resource: str = MCP) -> FastAPI:
    auth = DeputizeAuth(verifier(clock, audience=resource), base_url=ORIGIN, resource=resource)
    app = FastAPI()
    app.router.routes.append(metadata_route(resource, [ISSUER]))
    caller = Annotated[Principal, Depends(auth.requires())]

    @app.post("/mcp")
    async def tool(principal: caller) -> dict[str, Any]:
        return {"user": principal.user}

    return app


def send(app: Any, method: str, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await client.request(method, url, headers=headers)

    return asyncio.run(go())


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_the_challenge_points_at_the_path_aware_metadata(clock: Clock, make_app: Any) -> None:
    app = make_app(clock)
    refused = send(app, "POST", MCP)
    assert refused.status_code == 401
    assert f'resource_metadata="{MCP_METADATA}"' in refused.headers["www-authenticate"]
    document = send(app, "GET", MCP_METADATA)  # no token needed
    assert document.status_code == 200
    assert document.json()["resource"] == MCP
    token = make_token(clock, aud=MCP)
    good = {
        "Authorization": f"DPoP {token}",
        "DPoP": make_proof(clock, token, method="POST", url=MCP),
    }
    assert send(app, "POST", MCP, good).json() == {"user": "alice"}


def test_a_resource_without_a_path_serves_the_root_document(clock: Clock) -> None:
    app = starlette_app(clock, resource=ORIGIN)
    assert send(app, "GET", ROOT_METADATA).json()["resource"] == ORIGIN
    refused = send(app, "GET", ORIGIN + "/secret")
    assert f'resource_metadata="{ROOT_METADATA}"' in refused.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", ORIGIN + "/secret"),
        ("GET", ROOT_METADATA),  # another resource's document is not ours to skip
        ("GET", MCP_METADATA + "/"),
        ("GET", MCP_METADATA + "/../../secret"),
        ("GET", ORIGIN + "/.well-known/oauth-protected-resource/mcp%2F..%2F..%2Fsecret"),
        ("GET", ORIGIN + "/.well-known/oauth-protected-resource/mcpx"),
        ("POST", MCP_METADATA),
        ("DELETE", MCP_METADATA),
    ],
    ids=[
        "another path",
        "the root document",
        "a trailing slash",
        "dot segments",
        "encoded dot segments",
        "a longer name",
        "POST to the metadata path",
        "DELETE to the metadata path",
    ],
)
def test_only_reading_the_metadata_document_skips_authentication(
    clock: Clock, method: str, url: str
) -> None:
    response = send(starlette_app(clock), method, url)
    assert response.status_code == 401, (response.status_code, response.text)
    assert "resource" not in response.text.replace("resource_metadata", "")


def test_the_challenge_names_bearer_when_bearer_is_allowed(clock: Clock) -> None:
    app = starlette_app(clock, allow_bearer=True)
    bare = send(app, "POST", MCP)
    assert bare.headers["www-authenticate"].startswith("DPoP ")
    assert ", Bearer" in bare.headers["www-authenticate"]
    ok = send(app, "POST", MCP, {"Authorization": f"Bearer {bearer_token(clock)}"})
    assert ok.json() == {"user": "svc"}
    bound = make_token(clock, aud=MCP)
    refused = send(app, "POST", MCP, {"Authorization": f"Bearer {bound}"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
