"""``httpx.Auth`` for resource servers: ``Authorization: DPoP <token>`` and a fresh proof with
``ath`` on every request (RFC 9449 §7.1), and one transparent retry when the server asks for a
nonce (``401`` + ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` + ``DPoP-Nonce``, §9).

The token may be a fixed :class:`Token` (or string) or a function returning one — then each
request gets the function's current answer, so a cached token is renewed when near expiry
(see :meth:`deputize.agent.AgentClient.auth_for`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, MutableMapping

import httpx

from deputize.agent.token import Token
from deputize.keys import SigningKey, create_proof
from deputize.keys._json import loads

TokenSource = str | Token | Callable[[], str | Token] | Callable[[], Awaitable[str | Token]]


def origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


def is_nonce_challenge(response: httpx.Response) -> bool:
    """RFC 9449 §8/§9: the server wants a nonce (token endpoint: 400 JSON; resource: 401)."""
    if "dpop-nonce" not in response.headers:
        return False
    if response.status_code == 401:
        return 'error="use_dpop_nonce"' in response.headers.get("www-authenticate", "")
    if response.status_code == 400:
        try:
            body = loads(response.content)
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"
    return False


class DPoPAuth(httpx.Auth):
    def __init__(
        self,
        key: SigningKey,
        token: TokenSource,
        *,
        nonces: MutableMapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self._token = token
        self.nonces: MutableMapping[str, str] = nonces if nonces is not None else {}
        self._clock = clock

    def _sign(self, request: httpx.Request, token: str) -> None:
        nonce = self.nonces.get(origin(request.url))
        request.headers["Authorization"] = f"DPoP {token}"
        request.headers["DPoP"] = create_proof(
            self.key, request.method, str(request.url), access_token=token, nonce=nonce,
            now=self._clock(),
        )  # fmt: skip

    def _learn(self, request: httpx.Request, response: httpx.Response) -> bool:
        """Remember a nonce the server sent; True if it asked us to retry with it."""
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.nonces[origin(request.url)] = nonce
        # A resource server asks for a nonce with 401 and a challenge (RFC 9449 §9); the 400
        # JSON form is the token endpoint's (§8), and this response's body is not read here.
        return response.status_code == 401 and is_nonce_challenge(response)

    def _current(self) -> str:
        source = self._token
        if callable(source):
            value = source()
            if inspect.isawaitable(value):
                raise TypeError("an async token source needs an httpx.AsyncClient")
            return str(value)
        return str(source)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._current()
        self._sign(request, token)
        response = yield request
        if self._learn(request, response):
            self._sign(request, token)  # a fresh proof (new jti) with the nonce
            response = yield request
            self._learn(request, response)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        source = self._token
        value = source() if callable(source) else source
        token = str(await value) if inspect.isawaitable(value) else str(value)
        self._sign(request, token)
        response = yield request
        if self._learn(request, response):
            self._sign(request, token)
            response = yield request
            self._learn(request, response)
