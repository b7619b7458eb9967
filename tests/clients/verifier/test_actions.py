"""Actions on resources, decided by the verifier locally: ``Verifier.decide`` and
``requires(action=..., resource=...)`` in the Starlette middleware and the FastAPI dependency,
with real tokens and proofs, and every trick a path can play tried against them.

No ``from __future__ import annotations``: FastAPI reads dependencies from the annotations.
"""

import asyncio
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import yaml
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from verifier_support import RESOURCE, Clock, make_proof, make_token, pinned

from deputize.keys.policy import load_policy
from deputize.verifier import Principal
from deputize.verifier.fastapi import DeputizeAuth
from deputize.verifier.starlette import DeputizeMiddleware, requires

STORY = Path(__file__).resolve().parents[3] / "examples" / "policy" / "unified-auth.yaml"
POLICY = load_policy(yaml.safe_load(STORY.read_text()))
DETAILS = [{"type": "docs", "actions": ["read", "delete"], "locations": ["docs:/q3/*"]}]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def claims(**extra: Any) -> dict[str, Any]:
    """alice -> scheduling-agent, an admin, with docs details (verifier_support's token shape)."""
    return {
        "client_id": "scheduling-agent",
        "act": {"sub": "scheduling-agent"},
        "roles": ["admin"],
        "scope": None,
        "authorization_details": DETAILS,
        **extra,
    }


def starlette_app(clock: Clock, **options: Any) -> Starlette:
    async def ok(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/q3/{name}", requires(action="read", resource="docs:/q3/{name}")(ok)),
            Route(
                "/q3/{name}",
                requires(action="delete", resource="docs:/q3/{name}")(ok),
                methods=["DELETE"],
            ),
        ],
        middleware=[
            Middleware(DeputizeMiddleware, verifier=pinned(clock, **options), base_url=RESOURCE)
        ],
    )


def fastapi_app(clock: Clock, **options: Any) -> FastAPI:
    auth = DeputizeAuth(pinned(clock, **options), base_url=RESOURCE)
    app = FastAPI()
    reader = Annotated[Principal, Depends(auth.requires(action="read", resource="docs:/q3/{name}"))]
    remover = Annotated[
        Principal, Depends(auth.requires(action="delete", resource="docs:/q3/{name}"))
    ]

    @app.get("/q3/{name:path}")
    async def read(principal: reader) -> dict[str, Any]:
        return {"ok": True}

    @app.delete("/q3/{name:path}")
    async def delete(principal: remover) -> dict[str, Any]:
        return {"ok": True}

    return app


def send(app: Any, method: str, path: str, clock: Clock, **token_claims: Any) -> httpx.Response:
    token = make_token(clock, **claims(**token_claims))
    url = RESOURCE + path
    headers = {
        "Authorization": f"DPoP {token}",
        "DPoP": make_proof(clock, token, method=method, url=url),
    }

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await client.request(method, url, headers=headers)

    return asyncio.run(go())


APPS = pytest.mark.parametrize(
    "make_app", [starlette_app, fastapi_app], ids=["starlette", "fastapi"]
)


@APPS
def test_the_token_s_details_decide_without_a_policy(clock: Clock, make_app: Any) -> None:
    app = make_app(clock)
    assert send(app, "GET", "/q3/report.pdf", clock).status_code == 200
    assert send(app, "DELETE", "/q3/report.pdf", clock).status_code == 200  # the token allows it
    refused = send(app, "GET", "/q3/report.pdf", clock, authorization_details=None)
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"].startswith('DPoP error="insufficient_scope"')


@APPS
def test_the_policy_adds_tiers_and_profiles(clock: Clock, make_app: Any) -> None:
    app = make_app(clock, delegation_policy=POLICY)
    assert send(app, "GET", "/q3/report.pdf", clock).status_code == 200
    supervised = send(app, "DELETE", "/q3/report.pdf", clock)
    assert supervised.status_code == 403
    said = supervised.text + supervised.headers["www-authenticate"]
    assert "needs a person" in said and "deletes-wait-for-a-person" in said
    roleless = send(app, "GET", "/q3/report.pdf", clock, roles=[])
    assert roleless.status_code == 403


@APPS
@pytest.mark.parametrize(
    "path",
    ["/q3/..%2Fhr%2Fpay", "/q3/%2e%2e", "/q3/a%2Fb", "/q3/%252e%252e", "/q3/a%5Cb", "/q3/%00"],
)
def test_path_tricks_never_reach_outside_the_pattern(
    clock: Clock, make_app: Any, path: str
) -> None:
    response = send(make_app(clock), "GET", path, clock)
    assert response.status_code in (403, 404), response.text


def test_verifier_decide_names_the_rule(clock: Clock) -> None:
    verifier = pinned(clock, delegation_policy=POLICY, agent_profiles={"sched": "scheduling-agent"})
    token = make_token(clock, **claims(client_id="sched", act={"sub": "sched"}))
    principal = verifier.verify(
        authorization=[f"DPoP {token}"],
        dpop=[make_proof(clock, token, url=RESOURCE + "/x")],
        method="GET",
        url=RESOURCE + "/x",
    )
    read = verifier.decide(principal, "read", "docs:/q3/a.pdf")
    assert read.allowed and read.policy == POLICY.hash
    outside = verifier.decide(principal, "read", "docs:/q4/a.pdf")
    assert (outside.outcome, outside.rule) == ("deny", "token")
    share = verifier.decide(principal, "delete", "docs:/q3/a.pdf")
    assert (share.outcome, share.rule) == ("supervised", "tiers.deletes-wait-for-a-person")


def test_requires_needs_action_and_resource_together() -> None:
    with pytest.raises(ValueError):
        requires(action="read")
