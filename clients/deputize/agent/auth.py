"""``auth=`` for calling resource servers, with ``httpx`` or ``httpx2``: ``Authorization: DPoP
<token>`` and a fresh proof with ``ath`` on every request (RFC 9449 §7.1), and one transparent
retry when the server asks for a nonce (``401`` + ``WWW-Authenticate: DPoP
error="use_dpop_nonce"`` + ``DPoP-Nonce``, §9).

The token may be a fixed :class:`Token` (or string) or a function returning one — then each
request gets the function's current answer, so a cached token is renewed when near expiry
(see :meth:`deputize.agent.AgentClient.auth_for`).

One object serves both HTTP libraries: ``httpx2`` (which the MCP Python SDK and Starlette's
newest TestClient use when installed) refuses an ``auth`` that is not an instance of its own
``httpx2.Auth``, and ``httpx`` likewise; so :class:`DPoPAuth` subclasses ``httpx.Auth`` and, when
``httpx2`` is importable, ``httpx2.Auth`` too.  The two bases have the same flow protocol
(``sync_auth_flow`` / ``async_auth_flow`` generators), and the flow reads only what both
libraries' requests and responses share (:mod:`deputize.agent._http`).  Neither library needs
the other; ``httpx`` stays the SDK's default.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, MutableMapping
from typing import TYPE_CHECKING, Any

import httpx

from deputize.agent._http import Request, Response, origin
from deputize.agent.token import Token
from deputize.keys import SigningKey, create_proof
from deputize.keys._json import loads

TokenSource = str | Token | Callable[[], str | Token] | Callable[[], Awaitable[str | Token]]


def is_nonce_challenge(response: Response) -> bool:
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


def _auth_bases() -> tuple[type, ...]:
    """``httpx.Auth``, and ``httpx2.Auth`` when that package is installed."""
    bases: list[type] = [httpx.Auth]
    with contextlib.suppress(ImportError):
        bases.append(importlib.import_module("httpx2").Auth)
    return tuple(bases)


if TYPE_CHECKING:
    import httpx2

    class _AuthBase(httpx.Auth, httpx2.Auth):  # type: ignore[misc]  # same protocol, two types
        pass
else:
    _AuthBase = type("_AuthBase", _auth_bases(), {"__module__": __name__})


class DPoPAuth(_AuthBase):
    """``auth=`` for ``httpx.Client``/``AsyncClient`` and ``httpx2.Client``/``AsyncClient``."""

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

    def _sign(self, request: Request, token: str) -> None:
        nonce = self.nonces.get(origin(request.url))
        request.headers["Authorization"] = f"DPoP {token}"
        request.headers["DPoP"] = create_proof(
            self.key, request.method, str(request.url), access_token=token, nonce=nonce,
            now=self._clock(),
        )  # fmt: skip

    def _learn(self, request: Request, response: Response) -> bool:
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
                raise TypeError("an async token source needs an AsyncClient (httpx or httpx2)")
            return str(value)
        return str(source)

    # The flows are typed with Any: the same generator drives an httpx or an httpx2 client.
    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        token = self._current()
        self._sign(request, token)
        response = yield request
        if self._learn(request, response):
            self._sign(request, token)  # a fresh proof (new jti) with the nonce
            response = yield request
            self._learn(request, response)

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        source = self._token
        value = source() if callable(source) else source
        token = str(await value) if inspect.isawaitable(value) else str(value)
        self._sign(request, token)
        response = yield request
        if self._learn(request, response):
            self._sign(request, token)
            response = yield request
            self._learn(request, response)
