"""Client metadata (RFC 7591 §2) as sent to ``/register``: validated against the policy and
normalised into the client Deputize stores and the metadata it returns.

Metadata Deputize does not understand is ignored (§2: "MUST ignore"), and never echoed.  Every
refusal is an RFC 7591 §3.2.2 error: ``invalid_redirect_uri`` for a redirect URI,
``invalid_software_statement`` for a software statement (none is accepted), and
``invalid_client_metadata`` for everything else, the policy's refusals included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from deputize.server.configuration.registration import RegistrationSettings
from deputize.server.errors import (
    InvalidClientMetadataError,
    InvalidRedirectURIError,
    InvalidSoftwareStatementError,
    OAuthError,
)
from deputize.server.settings import AUTHORIZATION_CODE, PUBLIC_CLIENT, ClientConfig, ConfigError
from deputize.server.settings import parse_client as parse_client_record

#: OpenID Connect scopes every client may ask for (``tokens/scope_words.OIDC_SCOPES``).
OIDC_SCOPES: Final = ("openid", "profile", "email")
_MAX_URIS: Final = 10
_MAX_URI: Final = 2000
_MAX_TEXT: Final = 200
_LOOPBACK: Final = ("127.0.0.1", "::1", "localhost")
#: Plain strings echoed as registered; URLs (https, or http on loopback) likewise.
_TEXT_FIELDS: Final = ("client_name", "software_id", "software_version")
_URL_FIELDS: Final = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
#: What a client must not set at RFC 7592 §2.2 update (it is the server's to assign).
SERVER_FIELDS: Final = (
    "registration_access_token", "registration_client_uri", "client_secret_expires_at",
    "client_id_issued_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Metadata:
    """The registered metadata (what a read returns) and the client record's fields."""

    registered: dict[str, Any]
    record: dict[str, Any]


def _text(body: dict[str, Any], name: str, *, limit: int = _MAX_TEXT) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise InvalidClientMetadataError(f"{name} must be a non-empty string of at most {limit}")
    return value


def _strings(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > _MAX_URIS
        or not all(isinstance(v, str) and v and "\x00" not in v for v in value)
        or len(set(value)) != len(value)
    ):
        raise InvalidClientMetadataError(
            f"{name} must be a list of at most {_MAX_URIS} different non-empty strings"
        )
    return list(value)


def _web_url(name: str, value: str, error: type[OAuthError]) -> None:
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:  # such as an unclosed IPv6 bracket or a bad port
        raise error(f"{name}: {value!r} is not a URL") from None
    if len(value) > _MAX_URI or parts.scheme not in ("http", "https") or not hostname:
        raise error(f"{name}: {value!r} must be an https URL")
    if parts.scheme == "http" and hostname not in _LOOPBACK:
        raise error(f"{name}: {value!r} must use https (plain http only on loopback)")
    if "#" in value:
        raise error(f"{name}: {value!r} must not have a fragment")


def redirect_uri(value: str) -> None:
    """RFC 6749 §3.1.2 / RFC 9700 §2.1 / RFC 8252 §7: absolute, no fragment, matched exactly at
    ``/authorize`` (port included); https, or http on a loopback host (§7.3), or a private-use
    scheme in reverse-domain form (§7.1) for native apps."""
    scheme = value.partition(":")[0].lower()
    if scheme in ("http", "https"):
        _web_url("redirect_uris", value, InvalidRedirectURIError)
        return
    if (
        len(value) > _MAX_URI
        or "#" in value
        or not value.isascii()
        or not value.isprintable()
        or "." not in scheme
        or not scheme.replace(".", "").replace("-", "").replace("+", "").isalnum()
        or not scheme[0].isalpha()
    ):
        raise InvalidRedirectURIError(
            f"redirect_uris: {value!r} must be https, http on loopback, or a private-use scheme "
            "such as com.example.app:/callback (RFC 8252 §7), without a fragment"
        )


def _scopes(body: dict[str, Any], policy: RegistrationSettings) -> list[str]:
    scope = _text(body, "scope", limit=2000)
    scopes = scope.split() if scope else []
    refused = [s for s in scopes if s not in policy.allowed_scopes and s not in OIDC_SCOPES]
    if refused:
        raise InvalidClientMetadataError("scope not allowed for registered clients: " + refused[0])
    return list(dict.fromkeys(scopes))


def validate(body: object, policy: RegistrationSettings, client_id: str) -> Metadata:
    """Check ``body`` (parsed JSON) against RFC 7591 §2 and the policy."""
    if not isinstance(body, dict):
        raise InvalidClientMetadataError("the request body must be a JSON object")
    if body.get("software_statement") is not None:
        raise InvalidSoftwareStatementError("this server accepts no software statements")
    # §2: the default is client_secret_basic, and grant type authorization_code.
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in policy.allowed_auth_methods:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method {str(method)[:40]!r} is not allowed here; "
            f"allowed: {', '.join(policy.allowed_auth_methods)}"
        )
    grant_types = _strings(body, "grant_types") or [AUTHORIZATION_CODE]
    refused = [g for g in grant_types if g not in policy.allowed_grant_types]
    if refused:
        raise InvalidClientMetadataError(f"grant type {refused[0][:80]!r} is not allowed here")
    # §2.1: "code" goes with authorization_code; Deputize has no other response type.
    response_types = ["code"] if AUTHORIZATION_CODE in grant_types else []
    if _strings(body, "response_types") not in (None, response_types):
        raise InvalidClientMetadataError(
            f"response_types must be {response_types} for grant types {grant_types}"
        )
    uris = _strings(body, "redirect_uris") or []
    for uri in uris:
        redirect_uri(uri)
    if AUTHORIZATION_CODE in grant_types and not uris:
        raise InvalidRedirectURIError("redirect_uris is required for the authorization_code grant")
    dpop_bound = body.get("dpop_bound_access_tokens", False)  # RFC 9449 §5.2: default false
    if not isinstance(dpop_bound, bool):
        raise InvalidClientMetadataError("dpop_bound_access_tokens must be true or false")
    registered: dict[str, Any] = {
        "redirect_uris": uris,
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "response_types": response_types,
    }
    scopes = _scopes(body, policy)
    if scopes:
        registered["scope"] = " ".join(scopes)
    for name in _TEXT_FIELDS:
        if (text := _text(body, name)) is not None:
            registered[name] = text
    for name in _URL_FIELDS:
        if (url := _text(body, name, limit=_MAX_URI)) is not None:
            _web_url(name, url, InvalidClientMetadataError)
            registered[name] = url
    if (contacts := _strings(body, "contacts")) is not None:
        registered["contacts"] = contacts
    if body.get("application_type") is not None:
        if body["application_type"] not in ("web", "native"):
            raise InvalidClientMetadataError("application_type must be web or native")
        registered["application_type"] = body["application_type"]
    record: dict[str, Any] = {
        "client_id": client_id,
        "name": registered.get("client_name"),
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "scopes": scopes,
        # Clients do not register resources (RFC 7591 has no such metadata): the policy's.
        "audiences": list(policy.audiences),
        "redirect_uris": uris,
        "dpop_bound_access_tokens": dpop_bound,
    }
    if method == "private_key_jwt":
        if body.get("jwks") is not None:
            registered["jwks"] = record["jwks"] = body["jwks"]
        if body.get("jwks_uri") is not None:
            # Fetching a URL any registrant names would let anyone aim this server's requests
            # at hosts only it can reach (SSRF); registered keys are sent inline.
            raise InvalidClientMetadataError("jwks_uri is not accepted here; send jwks inline")
    elif body.get("jwks") is not None or body.get("jwks_uri") is not None:
        raise InvalidClientMetadataError("jwks and jwks_uri are only for private_key_jwt clients")
    if method == PUBLIC_CLIENT and set(grant_types) - {AUTHORIZATION_CODE, "refresh_token"}:
        raise InvalidClientMetadataError("a public client may only use authorization_code")
    return Metadata(registered=registered, record=record)


def client_record(metadata: Metadata, secret_hash: str | None) -> ClientConfig:
    """The stored client (``parse_client``'s checks too: jwks usable, refresh needs the code
    grant...), or ``invalid_client_metadata`` naming what is wrong."""
    data = dict(metadata.record)
    if secret_hash is not None:
        data["client_secret_hash"] = secret_hash
    try:
        return parse_client_record(data, "metadata", env={}, registered=True)
    except ConfigError as exc:
        raise InvalidClientMetadataError(str(exc)) from None
