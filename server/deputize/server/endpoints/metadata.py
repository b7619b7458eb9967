"""Authorization server metadata (RFC 8414 §2), also served at the OpenID discovery path.

Only what is implemented is advertised: the code flow with PKCE S256 and RFC 9207 ``iss``,
public clients (``none``) at the token and PAR endpoints only, pushed authorization requests
(RFC 9126), OpenID Connect ID tokens, UserInfo and RP-Initiated Logout.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from deputize.keys.dpop import ALGORITHMS as DPOP_ALGORITHMS
from deputize.server.clients.auth import ASSERTION_ALGORITHMS
from deputize.server.registration.policy import enabled
from deputize.server.settings import AUTH_METHODS, CIBA, PUBLIC_CLIENT, Settings
from deputize.server.tokens.scope_words import OIDC_SCOPES


def build_metadata(settings: Settings, grant_types: list[str]) -> dict[str, Any]:
    if settings.policy is None:  # approvals need the policy's tiers and types: no CIBA then
        grant_types = [g for g in grant_types if g != CIBA]
    scopes = sorted(
        {scope for client in settings.clients for scope in client.scopes} | set(OIDC_SCOPES)
    )
    metadata: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.endpoint("/authorize"),
        "token_endpoint": settings.token_endpoint,
        "userinfo_endpoint": settings.endpoint("/userinfo"),
        "end_session_endpoint": settings.endpoint("/logout"),
        "jwks_uri": settings.endpoint("/jwks"),
        "introspection_endpoint": settings.endpoint("/introspect"),
        "revocation_endpoint": settings.endpoint("/revoke"),
        "grant_types_supported": grant_types,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],  # RFC 7636; plain is refused
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "prompt_values_supported": ["none", "login", "consent"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [settings.signing_alg],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "azp",
            "name",
            "preferred_username",
            "email",
        ],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, PUBLIC_CLIENT],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),  # RFC 9449 §5.1
        # RFC 9126 §5: pushed authorization requests, and whether /authorize takes nothing else.
        "pushed_authorization_request_endpoint": settings.par_endpoint,
        "require_pushed_authorization_requests": settings.require_pushed_authorization_requests,
    }
    metadata["scopes_supported"] = scopes
    if enabled(settings.registration):  # RFC 8414 §2: only when /register is served
        metadata["registration_endpoint"] = settings.endpoint("/register")
    if settings.client_documents.enabled:
        # draft-ietf-oauth-client-id-metadata-document-00 §5: URL client_ids are fetched.
        metadata["client_id_metadata_document_supported"] = True
    if settings.policy is not None and settings.policy.policy.types:
        # RFC 9396 §10: the types token exchange and client credentials accept (read at start).
        types = sorted(settings.policy.policy.types)
        metadata["authorization_details_types_supported"] = types
    if CIBA in grant_types:
        # OpenID CIBA Core 1.0 §4: poll mode only; no user_code; requests are not signed.
        metadata["backchannel_authentication_endpoint"] = settings.endpoint("/bc-authorize")
        metadata["backchannel_token_delivery_modes_supported"] = ["poll"]
        metadata["backchannel_user_code_parameter_supported"] = False
    return metadata


async def metadata(request: Request) -> Response:
    body: bytes = request.app.state.ctx.metadata_json
    return Response(
        body, media_type="application/json", headers={"Cache-Control": "public, max-age=300"}
    )


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")
