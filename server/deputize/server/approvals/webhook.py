"""Tell a platform that a request waits for its person (``approvals.webhook``), so it can reach
them by chat or mail; the request itself still waits on the account page whatever happens here.

Each new request is POSTed as JSON once its transaction has committed, from a task of its own:
the agent's ``/bc-authorize`` answer never waits for the platform, and a platform is never told
of a request that was rolled back.  The body is signed the way Stripe signs its webhooks:
``Deputize-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, so a receiver
proves it came from us and refuses a replay older than its tolerance (docs/approvals.md).

Delivery is bounded everywhere, because the platform is outside our control: each attempt has a
deadline (``timeout``), a failed one is tried again only while that could help (a connection
error, a timeout, 5xx or 429) with a short exponential backoff, at most ``attempts`` times;
redirects are not followed and the answer's body is never read; at most ``MAX_IN_FLIGHT``
deliveries run at once, and a request beyond that is logged and not announced.  Log lines name
the approval and what went wrong, never the URL (a chat webhook's URL is itself a secret), the
key or a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any, Final

import httpx

from deputize.server.approvals.words import request_in_words
from deputize.server.configuration.approvals import WebhookSettings
from deputize.server.storage.approvals import ApprovalRequest

EVENT: Final = "approval_requested"
SIGNATURE_HEADER: Final = "Deputize-Signature"
EVENT_HEADER: Final = "Deputize-Event"
#: Deliveries running at once; beyond that a platform that stopped answering would pile up
#: tasks and sockets for as long as agents keep asking.
MAX_IN_FLIGHT: Final = 100
#: Seconds before the second attempt, doubling after each (0.5 s, 1 s, 2 s, ...).
BACKOFF: Final = 0.5

logger = logging.getLogger("deputize.server")


def payload(request: ApprovalRequest, account_url: str) -> dict[str, Any]:
    """What the platform needs to reach the person and say what waits, and nothing an agent
    could redeem (no ``auth_req_id``, no token)."""
    return {
        "event": EVENT,
        "id": request.id,
        "sub": request.sub,
        "actors": list(request.actors),
        "client_id": request.client_id,
        "text": request_in_words(request.actors, request.authorization_details, request.sub),
        "authorization_details": request.authorization_details,
        "binding_message": request.binding_message,
        "expires_at": request.expires_at,
        "account_url": account_url,
    }


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Deputize-Signature`` value: the time is signed with the body, so an old delivery
    cannot be replayed as new."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Webhook:
    """Deliveries to one platform, owned by the server context (started with it, closed at
    shutdown, which cancels what is still in flight)."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        account_url: str,
        clock: Callable[[], float],
        max_in_flight: int = MAX_IN_FLIGHT,
        backoff: float = BACKOFF,
    ) -> None:
        self.settings = settings
        self.account_url = account_url
        self.clock = clock
        self.max_in_flight = max_in_flight
        self.backoff = backoff
        # A client of its own: a stuck platform must not hold connections that fetching
        # clients' and issuers' keys needs.  Proxies come from the environment as elsewhere.
        self._client = httpx.AsyncClient(timeout=settings.timeout, follow_redirects=False)
        #: Held here so running deliveries are not garbage-collected (asyncio keeps only weak
        #: references to tasks), and so shutdown can cancel them.
        self._tasks: set[asyncio.Task[None]] = set()

    def announce(self, request: ApprovalRequest) -> None:
        """Start delivering ``request`` (call after its transaction commits); never waits."""
        if len(self._tasks) >= self.max_in_flight:
            logger.warning(
                "approval webhook: %d deliveries in flight; approval %s not announced",
                len(self._tasks), request.id,
            )  # fmt: skip
            return
        body = json.dumps(payload(request, self.account_url), separators=(",", ":")).encode()
        task = asyncio.create_task(self._deliver(request.id, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel what is still in flight (the requests still wait on the account page)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, approval_id: str, body: bytes) -> None:
        attempts = self.settings.attempts
        try:
            for attempt in range(1, attempts + 1):
                failure, again = await self._attempt(body)
                if failure is None:
                    logger.debug("approval webhook: approval %s delivered", approval_id)
                    return
                if not again or attempt == attempts:
                    logger.warning(
                        "approval webhook: approval %s not delivered after %d attempt(s): %s",
                        approval_id, attempt, failure,
                    )  # fmt: skip
                    return
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        except asyncio.CancelledError:
            raise
        except Exception:  # a task's exception would otherwise surface only at shutdown
            logger.exception("approval webhook: delivering approval %s failed", approval_id)

    async def _attempt(self, body: bytes) -> tuple[str | None, bool]:
        """One POST: (None, _) when delivered, else (why, whether another attempt may help)."""
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self.settings.secret, timestamp, body),
            EVENT_HEADER: EVENT,
        }
        try:
            # httpx's timeout bounds each phase; this bounds the attempt as a whole.
            async with asyncio.timeout(self.settings.timeout):
                request = self._client.stream("POST", self.settings.url, content=body,
                                              headers=headers)  # fmt: skip
                async with request as response:
                    status = response.status_code  # the body is never read
        except TimeoutError:
            return f"no answer within {self.settings.timeout:g} s", True
        except httpx.TransportError as exc:
            return type(exc).__name__, True
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", status >= 500 or status == 429
