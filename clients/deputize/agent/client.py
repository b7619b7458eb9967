"""The agent's client for Deputize: get, exchange, hand off, redeem and use tokens.

:class:`AgentClient` (blocking) and :class:`AsyncAgentClient` (coroutines) have the same
methods.  Both share :mod:`deputize.agent._core`.  Each talks to Deputize through ``http=``: an
``httpx.Client`` / ``httpx.AsyncClient`` (made for you when not given), or an ``httpx2`` client
— the library the MCP Python SDK uses — so an agent can share the SDK's client, its
transport and its settings.  The client passed in is the caller's to close.

Tokens from :meth:`~AgentClient.client_credentials` and :meth:`~AgentClient.exchange` are cached
until ``refresh_margin`` seconds before they expire; asking again after that exchanges again
from the same parent, so an agent never holds a long-lived token and revoking the parent stops
it.  Hand-offs and redemptions are single-use and never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from deputize.agent._core import Core, SubjectToken, cache_key, metadata_url
from deputize.agent._http import AsyncHTTP, SyncHTTP
from deputize.agent.auth import DPoPAuth
from deputize.agent.token import Token
from deputize.keys import SigningKey

Scopes = str | Sequence[str] | None
Targets = str | Sequence[str] | None


class AgentClient:
    """A client of Deputize.  Authenticate with ``client_key`` (``private_key_jwt``) or
    ``client_secret``; ``dpop_key`` is generated when not given (keep it to reuse tokens)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        client_key: SigningKey | None = None,
        client_secret: str | None = None,
        dpop_key: SigningKey | None = None,
        auth_method: str | None = None,
        http: SyncHTTP | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 30,
    ) -> None:
        self._core = Core(
            issuer, client_id, dpop_key=dpop_key, client_key=client_key,
            client_secret=client_secret, auth_method=auth_method, clock=clock,
            refresh_margin=refresh_margin,
        )  # fmt: skip
        self._owns_http = http is None
        self.http: SyncHTTP = http or httpx.Client(timeout=30)

    @property
    def dpop_key(self) -> SigningKey:
        return self._core.dpop_key

    @property
    def client_id(self) -> str:
        return self._core.client_id

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def discover(self) -> Mapping[str, Any]:
        """RFC 8414 metadata (fetched once)."""
        if self._core.metadata is None:
            url = metadata_url(self._core.issuer)
            self._core.accept_metadata(self.http.get(url), url)
        assert self._core.metadata is not None
        return self._core.metadata

    def _token(self, form: Mapping[str, Any], *, ath: str | None) -> Token:
        self.discover()
        for retried in (False, True):
            url, data, headers = self._core.token_request(form, ath=ath)
            response = self.http.post(url, data=data, headers=headers)
            token = self._core.token_response(response, retried=retried)
            if token is not None:
                return token
        raise AssertionError("unreachable: the second answer is a token or an error")

    def client_credentials(self, *, scope: Scopes = None, resource: Targets = None) -> Token:
        """The client's own DPoP-bound token (cached until near expiry)."""
        form = self._core.client_credentials_form(scope, resource)
        key = cache_key(form)
        return self._core.cached(key) or self._core.remember(key, self._token(form, ath=None))

    def exchange(
        self,
        subject_token: SubjectToken,
        *,
        subject_token_type: str | None = None,
        scope: Scopes = None,
        audience: Targets = None,
        resource: Targets = None,
        task: str | None = None,
        actor_token: SubjectToken | None = None,
        actor_token_type: str | None = None,
        cache: bool = True,
    ) -> Token:
        """RFC 8693 token exchange.  ``subject_token_type`` defaults to an access token; pass
        :data:`~deputize.agent.JWT_TYPE` for a token from the user's identity provider.  With
        ``actor_token`` (another agent's own token) the result is bound to that agent's key."""
        form, ath = self._core.exchange_form(
            subject_token, subject_token_type=subject_token_type, scope=scope, audience=audience,
            resource=resource, task=task, actor_token=actor_token,
            actor_token_type=actor_token_type,
        )  # fmt: skip
        if not cache:
            return self._token(form, ath=ath)
        key = cache_key(form)
        return self._core.cached(key) or self._core.remember(key, self._token(form, ath=ath))

    def hand_off(self, token: SubjectToken, *, to: str, scope: Scopes = None) -> Token:
        """A single-use hand-off token for agent ``to`` (give it to that agent to redeem)."""
        return self.exchange(token, audience=to, scope=scope, cache=False)

    def redeem(
        self, hand_off_token: SubjectToken, *, scope: Scopes = None, resource: Targets = None
    ) -> Token:
        """Redeem a hand-off token made for this client: the result is bound to our key."""
        return self.exchange(hand_off_token, scope=scope, resource=resource, cache=False)

    def delegate(
        self, token: SubjectToken, *, actor_token: SubjectToken, scope: Scopes = None,
        resource: Targets = None,
    ) -> Token:  # fmt: skip
        """Delegate in one call to the agent whose own DPoP-bound token is ``actor_token``."""
        return self.exchange(
            token, actor_token=actor_token, scope=scope, resource=resource, cache=False
        )

    def auth(self, token: SubjectToken | Callable[[], SubjectToken]) -> DPoPAuth:
        """``auth=`` for resource servers (an ``httpx`` or ``httpx2`` client): DPoP header +
        fresh proof (with ``ath``)."""
        return DPoPAuth(
            self._core.dpop_key, token, nonces=self._core.nonces, clock=self._core.clock
        )

    def auth_for(self, subject_token: SubjectToken, **exchange: Any) -> DPoPAuth:
        """Auth that exchanges ``subject_token`` as needed: each request uses the cached token,
        re-exchanged from ``subject_token`` when near expiry."""
        return self.auth(lambda: self.exchange(subject_token, **exchange))


class AsyncAgentClient:
    """:class:`AgentClient` for event loops: the same methods, as coroutines."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        client_key: SigningKey | None = None,
        client_secret: str | None = None,
        dpop_key: SigningKey | None = None,
        auth_method: str | None = None,
        http: AsyncHTTP | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 30,
    ) -> None:
        self._core = Core(
            issuer, client_id, dpop_key=dpop_key, client_key=client_key,
            client_secret=client_secret, auth_method=auth_method, clock=clock,
            refresh_margin=refresh_margin,
        )  # fmt: skip
        self._owns_http = http is None
        self.http: AsyncHTTP = http or httpx.AsyncClient(timeout=30)

    @property
    def dpop_key(self) -> SigningKey:
        return self._core.dpop_key

    @property
    def client_id(self) -> str:
        return self._core.client_id

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def discover(self) -> Mapping[str, Any]:
        if self._core.metadata is None:
            url = metadata_url(self._core.issuer)
            self._core.accept_metadata(await self.http.get(url), url)
        assert self._core.metadata is not None
        return self._core.metadata

    async def _token(self, form: Mapping[str, Any], *, ath: str | None) -> Token:
        await self.discover()
        for retried in (False, True):
            url, data, headers = self._core.token_request(form, ath=ath)
            response = await self.http.post(url, data=data, headers=headers)
            token = self._core.token_response(response, retried=retried)
            if token is not None:
                return token
        raise AssertionError("unreachable: the second answer is a token or an error")

    async def client_credentials(self, *, scope: Scopes = None, resource: Targets = None) -> Token:
        form = self._core.client_credentials_form(scope, resource)
        key = cache_key(form)
        cached = self._core.cached(key)
        return cached or self._core.remember(key, await self._token(form, ath=None))

    async def exchange(
        self,
        subject_token: SubjectToken,
        *,
        subject_token_type: str | None = None,
        scope: Scopes = None,
        audience: Targets = None,
        resource: Targets = None,
        task: str | None = None,
        actor_token: SubjectToken | None = None,
        actor_token_type: str | None = None,
        cache: bool = True,
    ) -> Token:
        form, ath = self._core.exchange_form(
            subject_token, subject_token_type=subject_token_type, scope=scope, audience=audience,
            resource=resource, task=task, actor_token=actor_token,
            actor_token_type=actor_token_type,
        )  # fmt: skip
        if not cache:
            return await self._token(form, ath=ath)
        key = cache_key(form)
        cached = self._core.cached(key)
        return cached or self._core.remember(key, await self._token(form, ath=ath))

    async def hand_off(self, token: SubjectToken, *, to: str, scope: Scopes = None) -> Token:
        return await self.exchange(token, audience=to, scope=scope, cache=False)

    async def redeem(
        self, hand_off_token: SubjectToken, *, scope: Scopes = None, resource: Targets = None
    ) -> Token:
        return await self.exchange(hand_off_token, scope=scope, resource=resource, cache=False)

    async def delegate(
        self, token: SubjectToken, *, actor_token: SubjectToken, scope: Scopes = None,
        resource: Targets = None,
    ) -> Token:  # fmt: skip
        return await self.exchange(
            token, actor_token=actor_token, scope=scope, resource=resource, cache=False
        )

    def auth(self, token: SubjectToken | Callable[[], Any]) -> DPoPAuth:
        return DPoPAuth(
            self._core.dpop_key, token, nonces=self._core.nonces, clock=self._core.clock
        )

    def auth_for(self, subject_token: SubjectToken, **exchange: Any) -> DPoPAuth:
        return self.auth(lambda: self.exchange(subject_token, **exchange))
