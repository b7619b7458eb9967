"""OAuth 2.0 Protected Resource Metadata (RFC 9728): what a client needs to know to call us.

:func:`protected_resource_metadata` builds the document; :func:`metadata_path` is where
RFC 9728 §3.1 says to serve it.  The Starlette adapter serves it for you.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from deputize.keys.dpop import ALGORITHMS as DPOP_ALGORITHMS

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_path(resource: str) -> str:
    """RFC 9728 §3.1: the well-known segment goes between the host and the resource's path:
    ``https://host/mcp`` → ``/.well-known/oauth-protected-resource/mcp``, ``https://host`` →
    ``/.well-known/oauth-protected-resource``.  (A trailing slash is not part of the path.)"""
    return WELL_KNOWN + urlsplit(resource).path.rstrip("/")


def metadata_url(resource: str) -> str:
    """The URL a challenge's ``resource_metadata`` names (RFC 9728 §5.1): where
    :func:`metadata_path` serves the document, on the resource's own origin."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


def protected_resource_metadata(
    resource: str,
    authorization_servers: Sequence[str],
    *,
    scopes_supported: Sequence[str] = (),
    resource_name: str | None = None,
    resource_documentation: str | None = None,
    dpop_bound_access_tokens_required: bool = True,
) -> dict[str, Any]:
    """RFC 9728 §2: only what this verifier enforces — tokens in the header, DPoP-bound unless
    the resource accepts bearer tokens too (``Verifier(allow_bearer=True)``: then pass
    ``dpop_bound_access_tokens_required=False``)."""
    document: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        "dpop_bound_access_tokens_required": dpop_bound_access_tokens_required,
    }
    if scopes_supported:
        document["scopes_supported"] = list(scopes_supported)
    if resource_name is not None:
        document["resource_name"] = resource_name
    if resource_documentation is not None:
        document["resource_documentation"] = resource_documentation
    return document
