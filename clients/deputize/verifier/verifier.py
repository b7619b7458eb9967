"""Verify a request's DPoP-bound access token and delegation chain, locally.

The checks, in order (each has a test that fails it, ``tests/clients/verifier/``):

1. ``Authorization: DPoP <token>`` (RFC 9449 §7.1); one header.  ``Bearer`` (RFC 6750 §2.1)
   only when the resource opts in (``allow_bearer=True``, for clients that cannot bind a key,
   such as the MCP SDK today), and then only for a token *without* ``cnf.jkt``: a DPoP-bound
   token presented as a bearer token is always refused (RFC 9449 §7.1); steps 4 and 7 do not
   apply to a bearer token.
2. The token is an RFC 9068 JWT: ``typ: at+jwt``, ``alg`` on the allow-list, signed by a key
   of the configured issuer (chosen by ``kid`` from our own cache, never from the token),
   ``iss`` exact, ``aud`` naming this resource, ``exp``/``nbf``/``iat`` within a small leeway,
   ``jti`` and ``client_id`` present, and ``cnf.jkt`` present for ``DPoP`` (RFC 9449 §6.1).
3. The ``act`` chain parses with the rules the issuer mints by (``deputize.keys.chain``).
4. The DPoP proof passes RFC 9449 §4.3 (``deputize.keys.dpop``): ``typ``, ``alg``, ``jwk``,
   signature, ``htm``, ``htu``, ``iat`` window, ``ath`` = hash of this token, and the proof key
   is the token's ``cnf.jkt``; then, optionally, this resource's nonce (§9).
5. The token's status in the issuer's status list is VALID (not revoked).
6. The chain policy and the route's required scopes (RFC 6750 ``insufficient_scope``).
7. The proof's ``jti`` has not been seen before (§11.1); remembered last, so a refused request
   does not use up a proof.

No network I/O on the hot path: keys and status lists are cached in memory.  A miss (a new
``kid`` after rotation, a status list past its ``ttl``) is fetched — with ``httpx.Client``
from :meth:`Verifier.verify`, with ``httpx.AsyncClient`` from :meth:`Verifier.averify`, so an
event loop is never blocked — and the check runs again.  ``http=`` / ``async_http=`` may be
``httpx`` or ``httpx2`` clients of your own (yours to close).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import httpx

from deputize.keys import (
    SIGNING_ALGORITHMS,
    InvalidProofError,
    JoseError,
    check_audience,
    check_times,
    finite_number,
)
from deputize.keys.chain import audience_list, parse_chain, scope_list
from deputize.keys.dpop import ALGORITHMS as DPOP_ALGORITHMS
from deputize.keys.dpop import bound_key, check_proof
from deputize.keys.jwt import parse_parts, string_claim
from deputize.verifier._http import AsyncHTTP, SyncHTTP
from deputize.verifier.errors import (
    InsufficientScopeError,
    InvalidDPoPProofError,
    InvalidRequestError,
    InvalidTokenError,
    MissingTokenError,
    UnavailableError,
    UseDPoPNonceError,
)
from deputize.verifier.issuer_keys import IssuerKeys
from deputize.verifier.nonces import NonceSource
from deputize.verifier.policy import ChainPolicy
from deputize.verifier.principal import Principal
from deputize.verifier.replay import ReplayCache
from deputize.verifier.status_list import (
    VALID,
    StatusLists,
    StatusReference,
    status_reference,
)

#: RFC 9068 §2.1.
ACCESS_TOKEN_TYP: Final = "at+jwt"
_HTTP_TIMEOUT: Final = 5.0
Headers = str | Sequence[str] | None


class _NeedKeys(Exception):
    pass


class _VerifiedToken(NamedTuple):
    """What checks 2 and 3 established about one token string; they do not change with time.

    The principal is built here, once per token, and handed to every request that presents
    the token and passes the per-request checks: it is immutable, and nothing in it depends
    on the request.  (A named tuple: the cheapest record to build on the cold path.)
    """

    generation: int
    principal: Principal
    status: StatusReference | None


class _NeedStatus(Exception):
    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.uri = uri


def _values(header: Headers) -> Sequence[str]:
    if header is None:
        return ()
    return (header,) if isinstance(header, str) else header


class Verifier:
    """One resource's verifier: its issuer, its audience, its policy; thread- and task-safe."""

    def __init__(
        self,
        issuer: str,
        audience: str | Collection[str],
        *,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        algorithms: Collection[str] = SIGNING_ALGORITHMS,
        dpop_algorithms: Collection[str] = DPOP_ALGORITHMS,
        leeway: float = 30,
        proof_max_age: float = 60,
        policy: ChainPolicy | None = None,
        nonces: NonceSource | None = None,
        replay: ReplayCache | None = None,
        require_status: bool = False,
        allow_bearer: bool = False,
        token_cache_size: int = 4096,
        status_max_age: float = 300,
        status_retry_interval: float = 5,
        key_refresh_interval: float = 30,
        http: SyncHTTP | None = None,
        async_http: AsyncHTTP | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if issuer.endswith("/"):
            raise ValueError("issuer must not end with '/': it is compared as an exact string")
        self.issuer = issuer
        self.audience = frozenset({audience} if isinstance(audience, str) else audience)
        if not self.audience:
            raise ValueError("audience: name at least one")
        self.algorithms = tuple(algorithms)
        self.dpop_algorithms = tuple(dpop_algorithms)
        self.leeway = leeway
        self.proof_max_age = proof_max_age
        self.policy = policy or ChainPolicy()
        self.nonces = nonces
        self.replay = replay if replay is not None else ReplayCache()
        self.require_status = require_status
        #: Accept ``Authorization: Bearer`` for tokens that are not DPoP-bound (opt-in).
        self.allow_bearer = allow_bearer
        self.keys = IssuerKeys(
            issuer, jwks=jwks, jwks_uri=jwks_uri, refresh_interval=key_refresh_interval,
            clock=clock,
        )  # fmt: skip
        self.status_lists = StatusLists(
            self.keys, algorithms=self.algorithms, max_age=status_max_age, leeway=leeway,
            retry_interval=status_retry_interval, clock=clock,
        )  # fmt: skip
        # OrderedDict: dropping the oldest entry is O(1) (a dict's first live entry is found by
        # skipping every deleted slot before it).
        self._tokens: OrderedDict[str, _VerifiedToken] = OrderedDict()
        self._token_cache_size = token_cache_size
        self._http = http
        self._async_http = async_http
        self._owns_http = http is None
        self._owns_async_http = async_http is None
        self._clock = clock

    # --- the two entry points -----------------------------------------------------------------

    def verify(
        self,
        *,
        authorization: Headers,
        dpop: Headers,
        method: str,
        url: str,
        scopes: Collection[str] = (),
    ) -> Principal:
        """Verify a request; blocking network I/O when a key or status list must be fetched.

        ``url`` is the request URL as this resource's public address spells it (RFC 9449 §4.3
        check 9), never rebuilt from headers a client controls.
        """
        keys = self.keys
        if not keys.pinned and keys.should_refresh(missing=False):  # a pinned set never is
            with contextlib.suppress(UnavailableError):  # keep the keys we have
                keys.refresh(self._client())
        stale_ok = False
        for _ in range(3):
            try:
                return self._check(authorization, dpop, method, url, scopes, stale_ok=stale_ok)
            except _NeedKeys:
                if not self.keys.should_refresh(missing=True):
                    raise InvalidTokenError("token is signed with an unknown key") from None
                self.keys.refresh(self._client())
            except _NeedStatus as need:
                if self.status_lists.should_fetch(need.uri):
                    # On failure the last list serves until its exp; the check says when not.
                    with contextlib.suppress(UnavailableError):
                        self.status_lists.fetch(self._client(), need.uri)
                stale_ok = True
        raise UnavailableError("the issuer's keys or status list are unavailable")

    async def averify(
        self,
        *,
        authorization: Headers,
        dpop: Headers,
        method: str,
        url: str,
        scopes: Collection[str] = (),
    ) -> Principal:
        """:meth:`verify` for event loops: fetches use ``httpx.AsyncClient``."""
        if not self.keys.pinned and self.keys.should_refresh(missing=False):
            with contextlib.suppress(UnavailableError):  # keep the keys we have
                await self.keys.arefresh(self._aclient())
        stale_ok = False
        for _ in range(3):
            try:
                return self._check(authorization, dpop, method, url, scopes, stale_ok=stale_ok)
            except _NeedKeys:
                if not self.keys.should_refresh(missing=True):
                    raise InvalidTokenError("token is signed with an unknown key") from None
                await self.keys.arefresh(self._aclient())
            except _NeedStatus as need:
                if self.status_lists.should_fetch(need.uri):
                    with contextlib.suppress(UnavailableError):
                        await self.status_lists.afetch(self._aclient(), need.uri)
                stale_ok = True
        raise UnavailableError("the issuer's keys or status list are unavailable")

    def close(self) -> None:
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

    async def aclose(self) -> None:
        self.close()
        if self._owns_async_http and self._async_http is not None:
            await self._async_http.aclose()
            self._async_http = None

    def _client(self) -> SyncHTTP:
        if self._http is None:
            self._http = httpx.Client(timeout=_HTTP_TIMEOUT)
        return self._http

    def _aclient(self) -> AsyncHTTP:
        if self._async_http is None:
            self._async_http = httpx.AsyncClient(timeout=_HTTP_TIMEOUT)
        return self._async_http

    # --- the checks (CPU only) ----------------------------------------------------------------

    def _check(
        self,
        authorization: Headers,
        dpop: Headers,
        method: str,
        url: str,
        required: Collection[str],
        *,
        stale_ok: bool,
    ) -> Principal:
        now = self._clock()
        token, bearer = self._token_from(authorization, allow_bearer=self.allow_bearer)
        proofs = (dpop,) if isinstance(dpop, str) else _values(dpop)
        if not bearer and len(proofs) != 1:  # RFC 9449 §4.3 check 1
            raise InvalidDPoPProofError("send exactly one DPoP proof header")

        # 2 and 3: the token's signature and fixed claims, once per token string (cached,
        # bounded, and rechecked when the issuer's key set changes); times on every request.
        verified = self._tokens.get(token)
        if verified is None or verified.generation != self.keys.generation:
            verified = self._verify_token(token)
        principal = verified.principal
        claims = principal.claims
        try:
            check_times(claims, now=now, leeway=self.leeway, require_exp=True, require_iat=True)
        except JoseError as exc:
            raise InvalidTokenError(exc.description) from None
        jkt = principal.jkt
        if bearer:
            if jkt is not None:
                # RFC 9449 §7.1: a DPoP-bound token MUST be presented with its proof; a bearer
                # presentation of one is refused, whatever this resource allows.
                raise InvalidTokenError("a DPoP-bound token must be sent with DPoP, not Bearer")
            return self._check_rest(verified, principal, now, required, stale_ok=stale_ok)
        if jkt is None:
            raise InvalidTokenError("token is not DPoP-bound (no cnf.jkt)")

        # 4. The proof (RFC 9449 §4.3, §7.1), bound to this token and its key.
        try:
            _, proof_jti, proof_iat, nonce, _ = check_proof(
                proofs[0], method=method, url=url, now=now, max_age=self.proof_max_age,
                algorithms=self.dpop_algorithms, access_token=token, jkt=jkt,
            )  # fmt: skip
        except InvalidProofError as exc:
            raise InvalidDPoPProofError(exc.description) from None
        if self.nonces is not None and (nonce is None or not self.nonces.is_valid(nonce, now)):
            raise UseDPoPNonceError(
                "Resource server requires nonce in DPoP proof", nonce=self.nonces.current(now)
            )
        self._check_rest(verified, principal, now, required, stale_ok=stale_ok)

        # 7. Replay, last (RFC 9449 §11.1).  The proof key is the token's (check 13 above).
        if not self.replay.remember(f"{jkt}:{proof_jti}", proof_iat + self.proof_max_age + 1, now):
            raise InvalidDPoPProofError("DPoP proof has already been used")
        return principal

    def _check_rest(
        self,
        verified: _VerifiedToken,
        principal: Principal,
        now: float,
        required: Collection[str],
        *,
        stale_ok: bool,
    ) -> Principal:
        """Checks 5 and 6, the same for a DPoP and a bearer presentation."""
        claims = principal.claims
        # 5. Revocation, from the issuer's status list.
        ref = verified.status
        if ref is not None:
            status = self.status_lists.lookup(ref, now, stale_ok=stale_ok)
            if status is None:
                if stale_ok:
                    raise UnavailableError("the issuer's status list is unavailable")
                raise _NeedStatus(ref.uri)
            if status != VALID:
                raise InvalidTokenError("token has been revoked")
        elif self.require_status:
            raise InvalidTokenError("token carries no status list reference")

        # 6. This resource's own rules.
        scopes = principal.scopes
        self.policy.check(principal.chain, claims)
        if not scopes.issuperset(required):
            missing = [s for s in required if s not in scopes]
            raise InsufficientScopeError(
                "token lacks the scope this resource needs: " + " ".join(missing),
                required=tuple(required),
            )
        return principal

    def _verify_token(self, token: str) -> _VerifiedToken:
        """Checks 2 (but times) and 3 (RFC 9068 §4); caches the result by token string."""
        generation = self.keys.generation
        try:
            header, claims, signing_input, signature = parse_parts(
                token, algorithms=self.algorithms, typ=ACCESS_TOKEN_TYP
            )
        except JoseError as exc:
            raise InvalidTokenError(exc.description) from None
        key = self.keys.find_for_header(header)
        if key is None:
            raise _NeedKeys
        try:
            key.verify(header["alg"], signing_input, signature)
            if claims.get("iss") != self.issuer:
                raise InvalidTokenError("token is from another issuer")
            check_audience(claims, self.audience)
            jti = string_claim(claims, "jti")
            client_id = string_claim(claims, "client_id")
            chain = parse_chain(claims)  # the rules the issuer mints by
            scopes = frozenset(scope_list(claims))
            audience = tuple(audience_list(claims))
            jkt = bound_key(claims)
        except JoseError as exc:
            raise InvalidTokenError(exc.description) from None
        task = claims.get("task")
        if task is not None and not isinstance(task, str):
            raise InvalidTokenError("malformed 'task' claim")
        status = status_reference(claims)
        if status is not None:
            self.status_lists.check_uri(status.uri)
        # ``exp`` is checked with the clock on every request (check_times), before this
        # principal is handed out; a token whose ``exp`` is not a finite number never passes.
        exp = finite_number(claims.get("exp"))
        expires_at = int(exp) if exp is not None else 0
        # Positional: a call with eleven keywords costs about 4,600 instructions more.
        principal = Principal(
            chain.subject,  # user
            chain.current_actor,  # actor
            chain,
            scopes,
            audience,
            task,
            client_id,
            jti,
            expires_at,
            jkt,
            # Read-only: the same claims are handed to every request that presents this token.
            MappingProxyType(claims),
        )
        verified = _VerifiedToken(generation, principal, status)
        tokens = self._tokens
        tokens[token] = verified
        if len(tokens) > self._token_cache_size:  # bounded: drop the oldest entry
            tokens.popitem(last=False)
        return verified

    @staticmethod
    def _token_from(authorization: Headers, *, allow_bearer: bool) -> tuple[str, bool]:
        """The token, and whether it came as ``Bearer``."""
        values = (authorization,) if isinstance(authorization, str) else _values(authorization)
        if not values:
            raise MissingTokenError("no access token")
        if len(values) > 1:
            raise InvalidRequestError("send exactly one Authorization header")
        scheme, _, token = values[0].strip().partition(" ")
        scheme = scheme.lower()
        bearer = scheme == "bearer" and allow_bearer
        if scheme != "dpop" and not bearer:
            # RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused.
            raise InvalidTokenError("this resource accepts DPoP-bound tokens only")
        token = token.strip()
        if not token:
            raise InvalidTokenError("empty access token")
        return token, bearer
