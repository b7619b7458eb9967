"""Client authentication at the token, introspection and revocation endpoints.

``client_secret_basic`` and ``client_secret_post`` (RFC 6749 §2.3.1) and ``private_key_jwt``
(RFC 7523 §2.2/§3, OpenID Connect Core §9).  A client uses exactly one method per request
(RFC 6749 §2.3) and only the one it is registered for.  An unknown client and a wrong
secret fail identically (same error, same hashing work), so client IDs cannot be probed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from json.encoder import encode_basestring_ascii as _json_string
from typing import Final
from urllib.parse import unquote_plus

from starlette.datastructures import Headers

from deputize.keys import JoseError, KeySet, check_audience, check_times
from deputize.keys._b64 import b64url_encode
from deputize.keys.jwt import normalize_typ, parse_parts, string_claim
from deputize.server.clients.remote_jwks import JWKSFetchError
from deputize.server.clients.secrets import hash_secret, verify_secret
from deputize.server.context import ServerContext
from deputize.server.errors import InvalidClientError, InvalidRequestError
from deputize.server.http.form import Form
from deputize.server.settings import PUBLIC_CLIENT, ClientConfig
from deputize.server.storage.request_store import RequestStore

JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS: Final = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
#: A client assertion must not be a token of another kind replayed here (RFC 8725 §3.11).
_ASSERTION_TYPS: Final = frozenset({"", "jwt", "client-authentication+jwt"})
_LEEWAY: Final = 5
_DUMMY_HASH: Final = hash_secret("deputize-timing-equaliser")


async def find_client(
    ctx: ServerContext, store: RequestStore, client_id: str
) -> ClientConfig | None:
    client = ctx.static_clients.get(client_id)
    if client is not None:
        return client
    if "\x00" in client_id:  # PostgreSQL refuses NUL in text: no such client, not a crash
        return None
    return await store.client(client_id)


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError("unsupported authorization scheme")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):  # ValueError: non-ASCII input
        raise InvalidClientError("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClientError("malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(
    ctx: ServerContext, store: RequestStore, headers: Headers, form: Form, *, endpoint: str
) -> ClientConfig:
    authorization = headers.get("authorization")
    basic = authorization is not None and authorization.lower().startswith("basic ")
    used = [
        name
        for name, present in (
            ("client_secret_basic", basic),
            ("client_secret_post", "client_secret" in form),
            ("private_key_jwt", "client_assertion" in form or "client_assertion_type" in form),
        )
        if present
    ]
    if len(used) > 1:
        raise InvalidRequestError("use exactly one client authentication method")
    if not used:
        return await _public_client(ctx, store, form, endpoint=endpoint)
    method = used[0]
    if method == "private_key_jwt":
        return await _private_key_jwt(ctx, store, form, endpoint=endpoint)
    if method == "client_secret_basic":
        assert authorization is not None
        client_id, secret = _basic_credentials(authorization)
        if form.get("client_id") not in (None, client_id):
            raise InvalidRequestError("client_id does not match the authenticated client")
    else:
        client_id, secret = form.require("client_id"), form.require("client_secret")
    client = await find_client(ctx, store, client_id)
    if client is None or client.client_secret_hash is None:
        verify_secret(secret, _DUMMY_HASH)  # same work whether or not the client exists
        raise InvalidClientError("client authentication failed", client_id=client_id)
    if not verify_secret(secret, client.client_secret_hash):
        raise InvalidClientError("client authentication failed", client_id=client_id)
    if client.token_endpoint_auth_method != method:
        raise InvalidClientError(
            f"client is registered for {client.token_endpoint_auth_method}", client_id=client_id
        )
    return client


async def _public_client(
    ctx: ServerContext, store: RequestStore, form: Form, *, endpoint: str
) -> ClientConfig:
    """RFC 6749 §2.1 / §3.2.1: a public client identifies itself with ``client_id`` only, and
    only at the token endpoint (its grants need PKCE and DPoP: see the grants) and, as RFC 9126
    §2 has it, at the pushed authorization request endpoint."""
    client_id = form.get("client_id")
    if client_id is None or endpoint not in (
        ctx.settings.token_endpoint,
        ctx.settings.par_endpoint,
    ):
        raise InvalidClientError("client authentication required")
    client = await find_client(ctx, store, client_id)
    if client is None or client.token_endpoint_auth_method != PUBLIC_CLIENT:
        raise InvalidClientError("client authentication required")
    return client


def _replay_key(client_id: str, jti: str) -> str:
    """A fixed-length key: ``client_id`` may contain ``:`` (so joining the two is ambiguous),
    and a 128-character id with a 200-character jti would not fit the cache's key column.

    The hashed text is ``json.dumps([client_id, jti])``, written out: the two JSON strings
    between ``[``, ``, `` and ``]``, as the encoder itself joins them (a fifth of the cost).
    Keys must not change across versions, or a replay could straddle an upgrade."""
    text = f"[{_json_string(client_id)}, {_json_string(jti)}]"
    return "assertion:" + b64url_encode(hashlib.sha256(text.encode("ascii")).digest())


async def _client_keys(ctx: ServerContext, client: ClientConfig, *, refresh: bool) -> KeySet:
    if client.jwks is not None:
        keys = ctx.inline_jwks.get(client.client_id)
        if keys is None:
            keys = KeySet.from_jwks(client.jwks)
            if client.client_id in ctx.static_clients:
                ctx.inline_jwks[client.client_id] = keys
        return keys
    assert client.jwks_uri is not None
    try:
        return await ctx.remote_jwks.get(client.jwks_uri, now=ctx.clock(), refresh=refresh)
    except JWKSFetchError as exc:
        raise InvalidClientError("could not fetch the client's jwks_uri", debug=str(exc)) from None


async def _private_key_jwt(
    ctx: ServerContext, store: RequestStore, form: Form, *, endpoint: str
) -> ClientConfig:
    if form.get("client_assertion_type") != JWT_BEARER:
        raise InvalidClientError(f"client_assertion_type must be {JWT_BEARER}")
    assertion = form.require("client_assertion")
    now = ctx.clock()
    try:
        # parse_parts: parse's checks, without building a frozen ParsedJWT (a hot path).
        header, claims, signing_input, signature = parse_parts(
            assertion, algorithms=ASSERTION_ALGORITHMS, typ=None
        )
        typ = header.get("typ", "")
        if not isinstance(typ, str) or normalize_typ(typ) not in _ASSERTION_TYPS:
            raise InvalidClientError("client assertion has an unexpected typ")
        # RFC 7523 §3 items 1-2: iss and sub are both the client_id.
        client_id = string_claim(claims, "sub", max_length=128)
        if claims.get("iss") != client_id:
            raise InvalidClientError("client assertion iss and sub must both be the client_id")
    except JoseError as exc:
        raise InvalidClientError(f"invalid client assertion: {exc.description}") from None
    if form.get("client_id") not in (None, client_id):
        raise InvalidRequestError("client_id does not match the client assertion")
    client = await find_client(ctx, store, client_id)
    if client is None or client.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClientError("client authentication failed", client_id=client_id)
    keys = await _client_keys(ctx, client, refresh=False)
    key = keys.find_for_header(header)
    if key is None and client.jwks_uri is not None:
        # Unknown kid: the client may have rotated; refetch (rate-limited by RemoteJWKS).
        keys = await _client_keys(ctx, client, refresh=True)
        key = keys.find_for_header(header)
    if key is None:
        raise InvalidClientError(
            "no registered key of the client matches the assertion", client_id=client_id
        )
    settings = ctx.settings
    try:
        key.verify(header["alg"], signing_input, signature)
        check_times(
            claims,
            now=now,
            leeway=_LEEWAY,
            require_exp=True,
            max_lifetime=settings.client_assertion_max_lifetime,
        )
        # RFC 7523 §3 item 3: aud identifies the authorization server — its issuer, or the
        # token endpoint (or the endpoint being called) as older clients send.
        check_audience(claims, {settings.issuer, settings.token_endpoint, endpoint})
        jti = string_claim(claims, "jti", max_length=200)
    except JoseError as exc:
        raise InvalidClientError(
            f"invalid client assertion: {exc.description}", client_id=client_id
        ) from None
    # RFC 7523 §3 item 7: single use — remember the jti until the assertion expires.
    exp = int(claims["exp"]) + _LEEWAY + 1
    if not await store.remember(_replay_key(client_id, jti), exp):
        raise InvalidClientError("client assertion has already been used", client_id=client_id)
    return client
