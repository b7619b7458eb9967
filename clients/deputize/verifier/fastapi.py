"""FastAPI adapter: a dependency per scope set.  Imports FastAPI; the core does not.

    deputize = DeputizeAuth(Verifier(ISSUER, RESOURCE), base_url=RESOURCE)
    Reader = Annotated[Principal, Depends(deputize.requires("docs:read"))]

    @app.get("/documents/{doc_id}")
    async def read(doc_id: str, principal: Reader):
        return {"user": principal.user, "actor": principal.actor}

A refusal is an ``HTTPException`` with the RFC 6750 / RFC 9449 challenge in its headers and
``{"error", "error_description"}`` as its detail; its ``resource_metadata`` names the RFC 9728
document for ``resource`` (default ``base_url``), served by
:func:`deputize.verifier.starlette.metadata_route` (``app.router.routes.append(...)``), which
needs no token: FastAPI dependencies apply only to the routes that declare them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request

from deputize.verifier.errors import VerificationError
from deputize.verifier.principal import Principal
from deputize.verifier.starlette import error_headers, public_url
from deputize.verifier.verifier import Verifier


class DeputizeAuth:
    def __init__(self, verifier: Verifier, *, base_url: str, resource: str | None = None) -> None:
        self.verifier = verifier
        self.base_url = base_url
        self.resource = resource or base_url

    def requires(self, *scopes: str) -> Callable[[Request], Awaitable[Principal]]:
        """A dependency that verifies the request and needs ``scopes``; returns the principal."""

        async def dependency(request: Request) -> Principal:
            try:
                return await self.verifier.averify(
                    authorization=request.headers.getlist("authorization"),
                    dpop=request.headers.getlist("dpop"),
                    method=request.method,
                    url=public_url(self.base_url, request.scope),
                    scopes=scopes,
                )
            except VerificationError as exc:
                headers = error_headers(exc, self.verifier, self.resource)
                raise HTTPException(
                    status_code=exc.status_code,
                    detail={"error": exc.error, "error_description": exc.description},
                    headers=headers,
                ) from None

        return dependency
