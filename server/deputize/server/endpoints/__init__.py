"""HTTP adapters: each module turns requests for one endpoint into calls on the core."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.server.errors import InvalidClientError, OAuthError
from deputize.server.settings import TOKEN_EXCHANGE
from deputize.server.storage import audit
from deputize.server.storage.database import Database
from deputize.server.storage.tables import audit_log

#: How much of a client_id the audit log's column holds.
_CLIENT_ID_COLUMN: int = cast(String, audit_log.c.client_id.type).length or 128


@dataclass(slots=True)
class Refusal:
    """What the endpoint has learnt so far, for the audit entry if the request is refused."""

    endpoint: str
    client_id: str | None = None
    grant_type: str | None = None
    subject: str | None = None
    actors: Sequence[str] = ()
    task: str | None = None

    def event(self, exc: OAuthError) -> audit.AuditEvent | None:
        if exc.error == "use_dpop_nonce":
            return None  # a protocol step the client answers, not a decision
        if exc.error == "invalid_client":
            name = audit.CLIENT_AUTH_FAILED
        elif self.endpoint == "backchannel":
            name = "approval_refused"  # CIBA §13: an agent's request for approval refused
        elif self.endpoint != "token":
            return None
        elif self.grant_type == TOKEN_EXCHANGE:
            name = audit.EXCHANGE_REFUSED
        else:
            name = audit.TOKEN_REFUSED
        client_id = self.client_id
        if isinstance(exc, InvalidClientError) and exc.client_id is not None:
            client_id = exc.client_id  # claimed in Basic credentials or an assertion
        if client_id is not None:
            # Only claimed by the request, so it fits the audit column as it can: a NUL (from
            # percent-decoded Basic credentials) PostgreSQL's text refuses, and no client has
            # an id longer than the column; keep its start, marked as cut.
            client_id = client_id.replace("\x00", "?")
            if len(client_id) > _CLIENT_ID_COLUMN:
                client_id = client_id[: _CLIENT_ID_COLUMN - 1] + "…"
        return audit.AuditEvent(
            event=name,
            client_id=client_id,
            subject=self.subject,
            actors=self.actors,
            task=self.task,
            reason=f"{exc.error}: {exc.description}",
            details={"endpoint": self.endpoint, "grant_type": self.grant_type}
            if self.grant_type
            else {"endpoint": self.endpoint},
        )


async def record_refusal(db: Database, refusal: Refusal, exc: OAuthError, now: int) -> None:
    """Audit a refusal decided before the request's transaction began (a malformed form, a
    bad DPoP proof), in a transaction of its own."""
    event = refusal.event(exc)
    if event is not None:
        async with db.begin() as conn:
            await audit.append(conn, event, now)


@asynccontextmanager
async def request_transaction(
    db: Database, refusal: Refusal, now: int
) -> AsyncIterator[AsyncConnection]:
    """The request's one transaction.

    It commits when the block succeeds *and* when it refuses the request with an
    :class:`OAuthError` (re-raised afterwards): what a refusal must leave behind — a used
    assertion or proof ``jti``, the audit entry saying why — is kept.  Anything else rolls back.
    """
    refused: OAuthError | None = None
    async with db.begin() as conn:
        try:
            yield conn
        except OAuthError as exc:
            refused = exc
            event = refusal.event(exc)
            if event is not None:
                await audit.append(conn, event, now)
    if refused is not None:
        raise refused
