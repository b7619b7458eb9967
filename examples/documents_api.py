"""A sample resource server: documents, protected by ``deputize.verifier``.

Reading needs ``docs:read``, writing ``docs:write``; every request is verified locally — the
token, its DPoP proof, its delegation chain and its status in Deputize's status list.

    python -m examples.documents_api --issuer http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deputize.verifier import Principal, Verifier
from deputize.verifier.starlette import DeputizeMiddleware, metadata_route, requires

DOCUMENTS = {"1": "Q3 report: revenue grew 12%; churn fell to 2.1%."}


def create_app(issuer: str, base_url: str, *, status_max_age: float = 60) -> Starlette:
    verifier = Verifier(issuer, base_url, status_max_age=status_max_age)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await verifier.aclose()

    async def read(request: Request) -> Response:
        principal: Principal = request.state.principal
        text = DOCUMENTS.get(request.path_params["doc_id"])
        if text is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(
            {"text": text, "for": principal.user, "by": principal.actor,
             "chain": list(principal.chain.actors), "task": principal.task}
        )  # fmt: skip

    async def write(request: Request) -> Response:
        DOCUMENTS[request.path_params["doc_id"]] = (await request.body()).decode()
        return JSONResponse({"written": True})

    return Starlette(
        routes=[
            Route("/documents/{doc_id}", requires("docs:read")(read), methods=["GET"]),
            Route("/documents/{doc_id}", requires("docs:write")(write), methods=["PUT"]),
            metadata_route(base_url, [issuer], scopes_supported=["docs:read", "docs:write"]),
        ],
        middleware=[Middleware(DeputizeMiddleware, verifier=verifier, base_url=base_url)],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Sample documents API (a resource server).")
    parser.add_argument("--issuer", required=True, help="Deputize's issuer URL")
    parser.add_argument(
        "--status-max-age", type=float, default=60,
        help="longest time, in seconds, a fetched status list is used (the list's ttl caps it)",
    )  # fmt: skip
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(args.issuer, url, status_max_age=args.status_max_age)
    print(f"listening on {url}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
