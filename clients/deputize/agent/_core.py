"""What the sync and async clients share: request building and response reading, no I/O.

Both clients run the same steps, so they cannot drift: discover the token endpoint (RFC 8414),
build the form with client authentication (``private_key_jwt`` per RFC 7523, or a secret per
RFC 6749 §2.3.1) and a fresh DPoP proof (RFC 9449 §4; with ``ath`` when the subject token is
itself DPoP-bound, as Deputize requires), send, and either read the token, retry once with the
server's nonce (§8), or raise the typed error.
"""

from __future__ import annotations

import base64
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Final, NamedTuple
from urllib.parse import quote_plus, urlsplit

from deputize.agent._http import Response, origin
from deputize.agent.auth import is_nonce_challenge
from deputize.agent.errors import DiscoveryError, OAuthError
from deputize.agent.token import Token, peek_claims
from deputize.keys import SigningKey, create_proof, finite_number, sign
from deputize.keys._json import loads

TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"
JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_AUTH_METHODS: Final = ("private_key_jwt", "client_secret_basic", "client_secret_post")
_CACHE_SIZE: Final = 256

SubjectToken = str | Token


def metadata_url(issuer: str) -> str:
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server" + (
        parts.path.rstrip("/")
    )


class TokenRequest(NamedTuple):
    """A POST to the token endpoint, sent with whichever client the agent holds
    (``http.post(url, data=data, headers=headers)`` reads the same in httpx and httpx2)."""

    url: str
    data: dict[str, str | Sequence[str]]
    headers: dict[str, str]


class Core:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        dpop_key: SigningKey | None,
        client_key: SigningKey | None,
        client_secret: str | None,
        auth_method: str | None,
        clock: Callable[[], float],
        refresh_margin: float,
    ) -> None:
        if (client_key is None) == (client_secret is None):
            raise ValueError("authenticate with exactly one of client_key or client_secret")
        method = auth_method or ("private_key_jwt" if client_key else "client_secret_basic")
        if method not in _AUTH_METHODS or (method == "private_key_jwt") != (client_key is not None):
            raise ValueError(f"auth_method {method!r} does not fit the credentials given")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.dpop_key = dpop_key or SigningKey.generate("ES256")
        self.client_key = client_key
        self.client_secret = client_secret
        self.auth_method = method
        self.clock = clock
        self.refresh_margin = refresh_margin
        self.metadata: Mapping[str, Any] | None = None
        self.nonces: dict[str, str] = {}
        self.cache: OrderedDict[Hashable, Token] = OrderedDict()

    # --- discovery ----------------------------------------------------------------------------

    def accept_metadata(self, response: Response, url: str) -> Mapping[str, Any]:
        try:
            document = loads(response.content) if response.status_code == 200 else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise DiscoveryError(f"no metadata at {url} ({response.status_code})")
        # RFC 8414 §3.3: the document must name exactly the issuer we asked.
        if document.get("issuer") != self.issuer:
            raise DiscoveryError("the metadata names another issuer")
        if not isinstance(document.get("token_endpoint"), str):
            raise DiscoveryError("the metadata has no token_endpoint")
        self.metadata = document
        return document

    @property
    def token_endpoint(self) -> str:
        assert self.metadata is not None
        endpoint: str = self.metadata["token_endpoint"]
        return endpoint

    # --- token requests -----------------------------------------------------------------------

    def token_request(
        self, form: Mapping[str, str | Sequence[str]], *, ath: str | None
    ) -> TokenRequest:
        """The POST to the token endpoint: fresh client assertion and fresh proof each time."""
        endpoint = self.token_endpoint
        data: dict[str, str | Sequence[str]] = dict(form)
        headers: dict[str, str] = {"Accept": "application/json"}
        now = self.clock()
        if self.auth_method == "private_key_jwt":
            assert self.client_key is not None
            claims = {
                "iss": self.client_id, "sub": self.client_id, "aud": self.issuer,
                "iat": int(now), "exp": int(now) + 60, "jti": secrets.token_urlsafe(16),
            }  # fmt: skip
            data["client_assertion_type"] = JWT_BEARER
            data["client_assertion"] = sign(claims, self.client_key, typ="JWT")
        elif self.auth_method == "client_secret_post":
            assert self.client_secret is not None
            data["client_id"] = self.client_id
            data["client_secret"] = self.client_secret
        else:
            assert self.client_secret is not None
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
            raw = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode("ascii")
        nonce = self.nonces.get(origin(endpoint))
        headers["DPoP"] = create_proof(
            self.dpop_key, "POST", endpoint, access_token=ath, nonce=nonce, now=now
        )
        return TokenRequest(endpoint, data, headers)

    def token_response(self, response: Response, *, retried: bool) -> Token | None:
        """The token, or None to retry once with the nonce just learnt."""
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.nonces[origin(self.token_endpoint)] = nonce
        if response.status_code == 200:
            return self._read_token(response)
        if is_nonce_challenge(response) and not retried:
            return None
        raise OAuthError.from_response(response)

    def _read_token(self, response: Response) -> Token:
        try:
            body = loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise OAuthError("invalid_response", "the token response has no access_token", 200)
        expires_in = body.get("expires_in")
        lifetime = finite_number(expires_in)
        if lifetime is None:
            lifetime = 60.0
        scope = body.get("scope")
        return Token(
            access_token=body["access_token"],
            token_type=str(body.get("token_type", "")),
            expires_at=self.clock() + lifetime,
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
            issued_token_type=body.get("issued_token_type"),
        )

    # --- forms --------------------------------------------------------------------------------

    @staticmethod
    def client_credentials_form(
        scope: str | Sequence[str] | None, resource: str | Sequence[str] | None
    ) -> dict[str, str | Sequence[str]]:
        form: dict[str, str | Sequence[str]] = {"grant_type": "client_credentials"}
        _scope_and_resource(form, scope, resource)
        return form

    @staticmethod
    def exchange_form(
        subject_token: SubjectToken,
        *,
        subject_token_type: str | None,
        scope: str | Sequence[str] | None,
        audience: str | Sequence[str] | None,
        resource: str | Sequence[str] | None,
        task: str | None,
        actor_token: SubjectToken | None,
        actor_token_type: str | None,
    ) -> tuple[dict[str, str | Sequence[str]], str | None]:
        """RFC 8693 §2.1 form, and the ``ath`` to put in the proof (for a bound subject)."""
        subject = str(subject_token)
        form: dict[str, str | Sequence[str]] = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject,
            "subject_token_type": subject_token_type or ACCESS_TOKEN_TYPE,
        }
        _scope_and_resource(form, scope, resource)
        if audience is not None:
            form["audience"] = [audience] if isinstance(audience, str) else list(audience)
        if task is not None:
            form["task"] = task
        if actor_token is not None:
            form["actor_token"] = str(actor_token)
            form["actor_token_type"] = actor_token_type or ACCESS_TOKEN_TYPE
        bound = (
            subject_token.bound
            if isinstance(subject_token, Token)
            else "cnf" in peek_claims(subject)
        )
        return form, subject if bound else None

    # --- cache --------------------------------------------------------------------------------

    def cached(self, key: Hashable) -> Token | None:
        token = self.cache.get(key)
        if token is not None and token.fresh(self.clock(), self.refresh_margin):
            return token
        return None

    def remember(self, key: Hashable, token: Token) -> Token:
        self.cache.pop(key, None)
        self.cache[key] = token
        while len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)
        return token


def cache_key(form: Mapping[str, str | Sequence[str]]) -> Hashable:
    return tuple(sorted((k, v if isinstance(v, str) else tuple(v)) for k, v in form.items()))


def _scope_and_resource(
    form: dict[str, str | Sequence[str]],
    scope: str | Sequence[str] | None,
    resource: str | Sequence[str] | None,
) -> None:
    if scope is not None:
        form["scope"] = scope if isinstance(scope, str) else " ".join(scope)
    if resource is not None:
        form["resource"] = [resource] if isinstance(resource, str) else list(resource)
