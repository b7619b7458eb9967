"""The Starlette middleware, the FastAPI dependency and the RFC 9728 metadata route, in-process
(httpx's ASGI transport), with a pinned key set and real tokens and proofs.

No ``from __future__ import annotations`` here: FastAPI reads the dependencies from the
annotations of endpoints defined inside a function, so they must be evaluated in place.
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
from verifier_support import ISSUER, RESOURCE, Clock, make_proof, make_token, pinned

from deputize.verifier import Principal
from deputize.verifier.fastapi import DeputizeAuth
from deputize.verifier.starlette import DeputizeMiddleware, metadata_route, requires

DOC = RESOURCE + "/documents/1"
METADATA = RESOURCE + "/.well-known/oauth-protected-resource"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def starlette_app(clock: Clock) -> Starlette:
    async def read(request: Request) -> Response:
        principal: Principal = request.state.principal
        return JSONResponse({"user": principal.user, "actor": principal.actor})

    return Starlette(
        routes=[
            Route("/documents/1", requires("docs:read")(read)),
            Route("/documents/1", requires("docs:write")(read), methods=["PUT"]),
            metadata_route(RESOURCE, [ISSUER], scopes_supported=["docs:read", "docs:write"]),
        ],
        middleware=[Middleware(DeputizeMiddleware, verifier=pinned(clock), base_url=RESOURCE)],
    )


def fastapi_app(clock: Clock) -> FastAPI:
    auth = DeputizeAuth(pinned(clock), base_url=RESOURCE)
    app = FastAPI()

    reader = Annotated[Principal, Depends(auth.requires("docs:read"))]
    writer = Annotated[Principal, Depends(auth.requires("docs:write"))]

    @app.get("/documents/1")
    async def read(principal: reader) -> dict[str, Any]:
        return {"user": principal.user, "actor": principal.actor}

    @app.put("/documents/1")
    async def write(principal: writer) -> dict[str, Any]:
        return {"written": True}

    return app


def send(app: Any, method: str, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.request(method, url, headers=headers)

    return asyncio.run(go())


def signed(clock: Clock, method: str = "GET") -> dict[str, str]:
    token = make_token(clock)
    return {"Authorization": f"DPoP {token}", "DPoP": make_proof(clock, token, method=method)}


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_a_good_request_reaches_the_endpoint(clock: Clock, make_app: Any) -> None:
    response = send(make_app(clock), "GET", DOC, signed(clock))
    assert response.status_code == 200, response.text
    assert response.json() == {"user": "alice", "actor": "analysis-agent"}


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_missing_scope_is_403_with_the_scope_in_the_challenge(clock: Clock, make_app: Any) -> None:
    response = send(make_app(clock), "PUT", DOC, signed(clock, "PUT"))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="insufficient_scope"')
    assert 'scope="docs:write"' in challenge
    assert f'resource_metadata="{METADATA}"' in challenge
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"])
def test_no_token_and_a_bad_token(clock: Clock, make_app: Any) -> None:
    app = make_app(clock)
    bare = send(app, "GET", DOC)
    assert bare.status_code == 401
    assert "error=" not in bare.headers["www-authenticate"]
    assert bare.headers["www-authenticate"].startswith("DPoP ")
    token = make_token(clock, aud="https://other.example.com")
    bad = send(app, "GET", DOC, {"Authorization": f"DPoP {token}",
                                 "DPoP": make_proof(clock, token)})  # fmt: skip
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert token not in bad.text


def test_the_proof_must_name_the_public_url_not_the_host_header(clock: Clock) -> None:
    token = make_token(clock)
    proof = make_proof(clock, token, url="https://evil.example.com/documents/1")
    response = send(
        starlette_app(clock), "GET", "https://evil.example.com/documents/1",
        {"Authorization": f"DPoP {token}", "DPoP": proof},
    )  # fmt: skip
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]


def test_protected_resource_metadata(clock: Clock) -> None:
    response = send(starlette_app(clock), "GET", METADATA)
    assert response.status_code == 200
    assert response.json() == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "RS256", "PS256"],
        "dpop_bound_access_tokens_required": True,
        "scopes_supported": ["docs:read", "docs:write"],
    }


def by_id_apps(clock: Clock) -> list[Any]:
    """Both adapters with a route that takes any document id, as a real API would."""

    async def read(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["doc_id"]})

    middleware = [Middleware(DeputizeMiddleware, verifier=pinned(clock), base_url=RESOURCE)]
    plain = Starlette(
        routes=[Route("/documents/{doc_id}", requires("docs:read")(read))], middleware=middleware
    )
    auth = DeputizeAuth(pinned(clock), base_url=RESOURCE)
    fast = FastAPI()

    @fast.get("/documents/{doc_id}")
    async def read_fast(
        doc_id: str, principal: Annotated[Principal, Depends(auth.requires("docs:read"))]
    ) -> dict[str, Any]:
        return {"id": doc_id}

    return [plain, fast]


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "%3F"), (0, "%23"), (0, "%2F"), (1, "%3F"), (1, "%23")],
    # FastAPI routes before its dependency runs: /documents/1/secret is no route there.
    ids=["starlette ?", "starlette #", "starlette /", "fastapi ?", "fastapi #"],
)
def test_a_proof_does_not_cover_a_path_that_decodes_to_it(
    clock: Clock, index: int, encoded: str
) -> None:
    """RFC 9449 §4.3 check 9 compares the URI as sent: ``/documents/1%3Fsecret`` is another
    resource than ``/documents/1`` (its decoded path would read as one with a query)."""
    app = by_id_apps(clock)[index]
    token = make_token(clock)
    other = f"{DOC}{encoded}secret"
    stolen = send(app, "GET", other, {"Authorization": f"DPoP {token}",
                                      "DPoP": make_proof(clock, token, url=DOC)})  # fmt: skip
    assert stolen.status_code == 401, stolen.text
    assert 'error="invalid_dpop_proof"' in stolen.headers["www-authenticate"]
    honest = send(app, "GET", other, {"Authorization": f"DPoP {token}",
                                      "DPoP": make_proof(clock, token, url=other)})  # fmt: skip
    assert honest.status_code in (200, 404), honest.text  # past the check; routing decides


def test_a_proxy_prefix_in_root_path_is_counted_once(clock: Clock) -> None:
    """Behind a proxy that strips ``/api`` and says so in ``root_path``, the URL the client
    signed is the prefixed one; current servers already include the prefix in the path."""
    app = starlette_app(clock)
    token = make_token(clock)
    url = RESOURCE + "/api/documents/1"

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path="/api")
        async with httpx.AsyncClient(transport=transport) as client:
            headers = {"Authorization": f"DPoP {token}", "DPoP": make_proof(clock, token, url=url)}
            return await client.get(url, headers=headers)

    response = asyncio.run(go())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("scope", "url"),
    [
        ({"path": "/documents/1?secret"}, RESOURCE + "/documents/1%3Fsecret"),
        ({"path": "/documents/1#x", "raw_path": None}, RESOURCE + "/documents/1%23x"),
        ({"path": "/documents/1", "root_path": "/api"}, RESOURCE + "/api/documents/1"),
        ({"path": "/api/documents/1", "root_path": "/api"}, RESOURCE + "/api/documents/1"),
        ({"path": "/x", "raw_path": b"/documents/1%3Fs?q=1"}, RESOURCE + "/documents/1%3Fs"),
    ],
    ids=[
        "a server without raw_path: the decoded path is encoded again, ? and all",
        "a null raw_path: the same",
        "an older server that leaves root_path out of path: it is put in front",
        "a current server that includes root_path: it is not doubled",
        "a raw_path with the query left on: the query is dropped",
    ],
)
def test_public_url_from_every_kind_of_scope(scope: dict[str, Any], url: str) -> None:
    """The branches the adapters' HTTP tests cannot reach through httpx and uvicorn, which
    always send raw_path: a decoded ``?`` must never end the path."""
    from deputize.verifier.starlette import public_url

    assert public_url(RESOURCE + "/", scope) == url
