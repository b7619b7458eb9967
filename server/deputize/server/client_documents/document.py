"""A fetched client ID metadata document, validated into a :class:`ClientConfig`.

draft-ietf-oauth-client-id-metadata-document-00 §4.1: a JSON object whose ``client_id`` equals
the URL it was fetched from (simple string comparison, RFC 3986 §6.2.1); the properties are
RFC 7591 client metadata.  §4.1 also forbids what needs a shared secret: no ``client_secret``,
no ``client_secret_expires_at``, no ``client_secret_*`` authentication method.

What Deputize accepts, and why:
- ``redirect_uris``: required, each checked like a configured client's (absolute, no fragment,
  ``http`` only on loopback, custom schemes reverse-DNS) and later matched exactly;
- ``token_endpoint_auth_method``: ``none`` (the default here: RFC 7591's default,
  ``client_secret_basic``, is the one thing the draft forbids) or ``private_key_jwt`` with an
  inline ``jwks`` (a ``jwks_uri`` would be one more URL fetched on a stranger's say-so, through
  a fetcher without these defences, so it is refused);
- ``grant_types``: ``authorization_code`` and ``refresh_token`` only; ``response_types``
  ``code`` only;
- ``client_name``, ``client_uri``, ``logo_uri``: optional strings (the name is shown on the
  consent page beside the URL's host, which is what identifies the client);
- ``scope``: ignored — a document cannot grant itself scopes.  Such a client may ask only for
  the OpenID Connect scopes; the resources it may reach are none beyond Deputize itself.

Such a client is never an agent and is marked ``source="metadata_document"``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Final

from deputize.server.client_documents.errors import ClientDocumentError
from deputize.server.settings import (
    AUTHORIZATION_CODE,
    PUBLIC_CLIENT,
    REFRESH_TOKEN,
    ClientConfig,
    ConfigError,
    parse_client,
)

METADATA_DOCUMENT: Final = "metadata_document"
_METHODS: Final = (PUBLIC_CLIENT, "private_key_jwt")
_GRANTS: Final = (AUTHORIZATION_CODE, REFRESH_TOKEN)
_SECRET_FIELDS: Final = ("client_secret", "client_secret_expires_at")
_MAX_NAME: Final = 100


def parse_document(body: bytes, client_id: str) -> ClientConfig:
    """The client ``body`` describes, or a ``ClientDocumentError`` saying what is wrong."""

    def refuse(reason: str) -> ClientDocumentError:
        return ClientDocumentError(reason, client_id=client_id)

    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise refuse("the document is not valid JSON") from None
    if not isinstance(data, dict):
        raise refuse("the document is not a JSON object")
    if data.get("client_id") != client_id:
        raise refuse("the document's client_id is not the URL it was fetched from")
    for secret in _SECRET_FIELDS:
        if secret in data:
            raise refuse(f"the document must not hold {secret} (no shared secrets)")
    method = data.get("token_endpoint_auth_method", PUBLIC_CLIENT)
    if method not in _METHODS:
        raise refuse(
            "token_endpoint_auth_method must be none or private_key_jwt (no shared secrets)"
        )
    if "jwks_uri" in data:
        raise refuse("jwks_uri is not supported in a client metadata document; publish jwks")
    grants = data.get("grant_types", [AUTHORIZATION_CODE])
    if not isinstance(grants, list) or not grants or any(g not in _GRANTS for g in grants):
        raise refuse("grant_types may hold only authorization_code and refresh_token")
    if AUTHORIZATION_CODE not in grants:
        raise refuse("grant_types must include authorization_code")
    response_types = data.get("response_types", ["code"])
    if response_types != ["code"]:
        raise refuse('response_types may only be ["code"]')
    redirect_uris = data.get("redirect_uris")
    if not isinstance(redirect_uris, list) or not redirect_uris:
        raise refuse("redirect_uris is required: a list of at least one URI")
    name = data.get("client_name")
    if name is not None and (
        not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME
    ):
        raise refuse(f"client_name must be a string of 1-{_MAX_NAME} characters")
    for field in ("client_uri", "logo_uri"):
        value = data.get(field)
        if value is not None and (not isinstance(value, str) or not value.startswith("https://")):
            raise refuse(f"{field} must be an https URL")
    config: dict[str, Any] = {
        "client_id": client_id,
        "token_endpoint_auth_method": method,
        "grant_types": grants,
        "redirect_uris": redirect_uris,
    }
    if name is not None:
        config["name"] = " ".join(name.split())  # no line breaks or runs of spaces on the page
    if method == "private_key_jwt":
        config["jwks"] = data.get("jwks")
    try:
        client = parse_client(config, "the client metadata document", env={})
    except ConfigError as exc:
        raise refuse(str(exc)) from None
    # parse_client left it no agent, without scopes or audiences, DPoP-bound; whether a
    # public one may have bearer tokens all the same is registration.allow_bearer_for_public_
    # clients' to say, as for clients that registered themselves (registration/policy.py).
    bound = data.get("dpop_bound_access_tokens") is True or method != "none"
    return replace(client, source=METADATA_DOCUMENT, dpop_bound_access_tokens=bound)
