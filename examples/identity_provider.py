"""A tiny example identity provider: signs a token for whoever asks to be ``alice``.

Stands in for real sign-in until Deputize has its own.  Deputize trusts it through
``trusted_issuers`` (its ``jwks_uri``).  NOT for production: there is no password.

    python -m examples.identity_provider --audience deputize
"""

from __future__ import annotations

import argparse
import secrets
import socket
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deputize.keys import SigningKey, sign


def create_app(issuer: str, audience: str, key: SigningKey) -> Starlette:
    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [key.public_jwk()]})

    async def login(request: Request) -> Response:
        body = await request.json()
        username = body.get("username") if isinstance(body, dict) else None
        if not isinstance(username, str) or not username.isalnum():
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": issuer, "sub": username, "aud": audience, "iat": now, "exp": now + 3600,
            "jti": secrets.token_urlsafe(12),
        }  # fmt: skip
        groups = body.get("groups")  # the person's groups, as a directory would state them
        if isinstance(groups, list) and all(isinstance(g, str) for g in groups):
            claims["groups"] = groups
        return JSONResponse({"access_token": sign(claims, key, typ="JWT"), "expires_in": 3600})

    return Starlette(
        routes=[Route("/jwks", jwks, methods=["GET"]), Route("/login", login, methods=["POST"])]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Example identity provider (demo only).")
    parser.add_argument("--audience", default="deputize")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(url, args.audience, SigningKey.generate("ES256"))
    print(f"listening on {url}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
