"""HTTP adapters: each module turns requests for one endpoint into calls on the core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.errors import OAuthError
from deputize.server.storage.database import Database


@asynccontextmanager
async def request_transaction(db: Database) -> AsyncIterator[AsyncConnection]:
    """The request's one transaction.  It commits when the block succeeds *and* when it refuses
    the request with an :class:`OAuthError` (which is then re-raised), so what a refusal must
    leave behind — a used assertion or proof ``jti`` — is kept.  Anything else rolls back."""
    refused: OAuthError | None = None
    async with db.begin() as conn:
        try:
            yield conn
        except OAuthError as exc:
            refused = exc
    if refused is not None:
        raise refused
