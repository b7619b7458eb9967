"""The registration policy: who may register (``registration.mode``, initial access tokens),
how often (a rate limit per source address), and what a registered client may skip (DPoP).

Registered clients are never agents: agents are configured by operators, and nothing a client
sends at ``/register`` can make one.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from deputize.server.clients.secrets import verify_secret
from deputize.server.configuration.registration import OFF, OPEN, RegistrationSettings
from deputize.server.errors import InvalidTokenError, TooManyRequestsError
from deputize.server.settings import PUBLIC_CLIENT, ClientConfig, Settings

_WINDOW: Final = 60.0
#: Sources remembered at once; past it the longest-known is forgotten (memory stays bounded).
_MAX_SOURCES: Final = 10_000


def enabled(policy: RegistrationSettings) -> bool:
    return policy.mode != OFF


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), or None."""
    if authorization is None:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        return None
    return value


def check_initial_access_token(policy: RegistrationSettings, authorization: str | None) -> None:
    """RFC 7591 §3: in ``initial_access_token`` mode, ``POST /register`` carries a bearer token
    the operator handed out; every configured hash is compared, in constant time."""
    if policy.mode == OPEN:
        return
    token = bearer_token(authorization)
    matched = False
    for stored in policy.initial_access_tokens:
        matched |= verify_secret(token or "", stored)
    if token is None or not matched:
        raise InvalidTokenError("a valid initial access token is required to register")


class RateLimiter:
    """At most ``limit`` registrations a minute from one source address, in this process.

    A sliding window per source, in memory: each instance counts on its own, so N instances
    allow up to N times the limit (docs/configuration.md says so).
    """

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def check(self, source: str) -> None:
        """Count one request from ``source``; 429 with ``Retry-After`` past the limit."""
        if self._limit <= 0:
            return
        now = self._clock()
        times = self._seen.pop(source, None) or deque()
        while times and times[0] <= now - _WINDOW:
            times.popleft()
        self._seen[source] = times  # most recently seen last
        if len(times) >= self._limit:
            retry = max(1, math.ceil(times[0] + _WINDOW - now))
            raise TooManyRequestsError(
                "too many registrations from this address; try again later", retry_after=retry
            )
        times.append(now)
        while len(self._seen) > _MAX_SOURCES:
            del self._seen[next(iter(self._seen))]


def binding_required(client: ClientConfig, settings: Settings) -> bool:
    """Whether ``client`` must send a DPoP proof at ``/token`` (RFC 9449 §5.2).

    A client with ``dpop_bound_access_tokens`` always must.  The one exception to "public
    clients bind": a *registered* public client, when ``registration.
    allow_bearer_for_public_clients`` allows it, may get bearer tokens (docs/security.md).
    Configured clients, agents and registered confidential clients are unaffected; a client
    that does send a proof gets bound tokens either way.
    """
    if client.dpop_bound_access_tokens or client.agent:
        return True
    if not client.registered:
        return False  # a configured confidential client that opted out, as configured
    return not (
        settings.registration.allow_bearer_for_public_clients
        and client.token_endpoint_auth_method == PUBLIC_CLIENT
    )
