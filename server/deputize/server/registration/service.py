"""Register (RFC 7591 §3), read, update and delete (RFC 7592 §2) a client, in the caller's
transaction.

- The client ID is random; a secret is generated only for ``client_secret_basic``/``_post``,
  shown once and stored as a SHA-256 hash (decision 0003), never chosen by the client.
- The registration access token (RFC 7592 §1.1) is random, stored as a hash and compared in
  constant time; a wrong token, a missing one and an unknown client all get the same 401.
- An update replaces the metadata as a whole (§2.2) and issues a new registration access token:
  RFC 7592 §3 lets the server rotate it on any response, and the client must then discard the
  old one, so a token that leaked is good only until the client's next update.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from deputize.keys.compare import same_text
from deputize.server.clients.secrets import generate_secret, hash_secret, verify_secret
from deputize.server.errors import InvalidClientMetadataError, InvalidTokenError
from deputize.server.registration.metadata import SERVER_FIELDS, client_record, validate
from deputize.server.registration.policy import bearer_token, binding_required
from deputize.server.settings import ClientConfig, Settings
from deputize.server.storage import clients, registrations
from deputize.server.tokens.revocation import revoke as revoke_tokens

SECRET_METHODS: Final = ("client_secret_basic", "client_secret_post")
TOKEN_PREFIX: Final = "dzreg_"
_DUMMY_HASH: Final = hash_secret("deputize-registration-timing-equaliser")


def _response(
    settings: Settings,
    client: ClientConfig,
    registered: dict[str, Any],
    *,
    issued_at: int,
    token: str,
    secret: str | None = None,
) -> dict[str, Any]:
    """RFC 7591 §3.2.1 / RFC 7592 §3: the metadata as registered, and what the server assigned."""
    body = dict(registered)
    # What applies now: a public client may skip DPoP only while the policy says so.
    body["dpop_bound_access_tokens"] = binding_required(client, settings)
    body["client_id"] = client.client_id
    body["client_id_issued_at"] = issued_at
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0  # §3.2.1: required with a secret; 0 is never
    body["registration_access_token"] = token
    body["registration_client_uri"] = settings.endpoint("/register/" + client.client_id)
    return body


def _new_token() -> tuple[str, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_secret(token)


async def register(
    conn: AsyncConnection, settings: Settings, body: object, now: int, *, source: str | None
) -> dict[str, Any]:
    policy = settings.registration
    client_id = secrets.token_urlsafe(18)
    metadata = validate(body, policy, client_id)
    method = metadata.registered["token_endpoint_auth_method"]
    secret = generate_secret() if method in SECRET_METHODS else None
    client = client_record(metadata, hash_secret(secret) if secret else None)
    if policy.unused_expiry:  # opportunistic: each registration sweeps a batch of stale ones
        await registrations.remove_unused(conn, now, older_than=now - policy.unused_expiry)
    token, token_hash = _new_token()
    await registrations.add(conn, client, metadata.registered, token_hash, now, source=source)
    return _response(
        settings, client, metadata.registered, issued_at=now, token=token, secret=secret
    )


async def authenticate(
    conn: AsyncConnection, client_id: str, authorization: str | None, *, lock: bool = False
) -> registrations.Registration:
    """RFC 7592 §2: the registration of ``client_id`` if the request's bearer token is its
    registration access token; 401 ``invalid_token`` otherwise, also when the client no longer
    exists (§2: "MUST respond with HTTP 401")."""
    token = bearer_token(authorization)
    found = None
    if 0 < len(client_id) <= 128 and "\x00" not in client_id:
        found = await registrations.get(conn, client_id, lock=lock)
    valid = verify_secret(token or "", found.token_hash if found else _DUMMY_HASH)
    if found is None or token is None or not valid:
        raise InvalidTokenError("the registration access token is invalid for this client")
    return found


async def read(
    conn: AsyncConnection, settings: Settings, client_id: str, authorization: str | None
) -> dict[str, Any]:
    found = await authenticate(conn, client_id, authorization)
    client = await clients.get(conn, client_id)
    token = bearer_token(authorization)
    if client is None or token is None:  # deleted between the two reads
        raise InvalidTokenError("the registration access token is invalid for this client")
    return _response(settings, client, found.metadata, issued_at=found.created_at, token=token)


async def update(
    conn: AsyncConnection,
    settings: Settings,
    client_id: str,
    authorization: str | None,
    body: object,
    now: int,
    *,
    source: str | None,
) -> dict[str, Any]:
    found = await authenticate(conn, client_id, authorization, lock=True)
    current = await clients.get(conn, client_id)
    if current is None:
        raise InvalidTokenError("the registration access token is invalid for this client")
    if not isinstance(body, dict):
        raise InvalidClientMetadataError("the request body must be a JSON object")
    # RFC 7592 §2.2: client_id is required and must not change; a client_secret sent must be
    # the current one; the server's own fields are not the client's to send.
    if not isinstance(body.get("client_id"), str) or not same_text(body["client_id"], client_id):
        raise InvalidClientMetadataError("client_id must be this client's identifier")
    sent_secret = body.get("client_secret")
    if sent_secret is not None and not (
        isinstance(sent_secret, str)
        and current.client_secret_hash is not None
        and verify_secret(sent_secret, current.client_secret_hash)
    ):
        raise InvalidClientMetadataError("client_secret does not match the issued secret")
    sent = [name for name in SERVER_FIELDS if name in body]
    if sent:
        raise InvalidClientMetadataError(f"{sent[0]} is assigned by the server; leave it out")
    metadata = validate(body, settings.registration, client_id)
    method = metadata.registered["token_endpoint_auth_method"]
    secret = None
    secret_hash = None
    if method in SECRET_METHODS:
        secret_hash = current.client_secret_hash
        if secret_hash is None:  # it had none (another method): a new one, shown once
            secret = generate_secret()
            secret_hash = hash_secret(secret)
    client = client_record(metadata, secret_hash)
    token, token_hash = _new_token()
    if not await registrations.replace(
        conn, client, metadata.registered, token_hash, now, source=source
    ):
        raise InvalidTokenError("the registration access token is invalid for this client")
    return _response(
        settings, client, metadata.registered, issued_at=found.created_at, token=token,
        secret=secret,
    )  # fmt: skip


async def delete(
    conn: AsyncConnection,
    client_id: str,
    authorization: str | None,
    now: int,
    *,
    source: str | None,
) -> None:
    """RFC 7592 §2.3: the client is gone, and its tokens are revoked with it (the SHOULD of
    §2.3: they and everything delegated from them show as revoked at once)."""
    await authenticate(conn, client_id, authorization, lock=True)
    if not await registrations.remove(conn, client_id, now, reason="deleted", source=source):
        raise InvalidTokenError("the registration access token is invalid for this client")
    await revoke_tokens(conn, now, by=client_id, client_id=client_id)
