"""Deputize's resource-server verifier: check a DPoP-bound access token and its delegation
chain locally, with no call to Deputize per request.

    verifier = Verifier("https://auth.example.com", "https://docs.example.com")
    principal = await verifier.averify(
        authorization=request.headers.get("authorization"),
        dpop=request.headers.getlist("dpop"),
        method=request.method,
        url="https://docs.example.com/documents/1",
        scopes=["docs:read"],
    )
    principal.user, principal.actor, principal.chain.actors, principal.task

Starlette/ASGI middleware: :mod:`deputize.verifier.starlette`; FastAPI dependency:
:mod:`deputize.verifier.fastapi`; MCP servers on the official Python SDK:
:mod:`deputize.verifier.mcp` (each imports its framework only when imported itself).
``Verifier(..., allow_bearer=True)`` also accepts bearer tokens that are not DPoP-bound.
See docs/verifier.md.
"""

from __future__ import annotations

from deputize.verifier.errors import (
    ChainPolicyError,
    InsufficientScopeError,
    InvalidDPoPProofError,
    InvalidRequestError,
    InvalidTokenError,
    MissingTokenError,
    UnavailableError,
    UseDPoPNonceError,
    VerificationError,
)
from deputize.verifier.issuer_keys import IssuerKeys
from deputize.verifier.metadata import protected_resource_metadata
from deputize.verifier.nonces import NonceSource
from deputize.verifier.policy import ChainPolicy
from deputize.verifier.principal import Principal
from deputize.verifier.replay import ReplayCache
from deputize.verifier.status_list import StatusLists
from deputize.verifier.verifier import Verifier

__all__ = [
    "ChainPolicy",
    "ChainPolicyError",
    "InsufficientScopeError",
    "InvalidDPoPProofError",
    "InvalidRequestError",
    "InvalidTokenError",
    "IssuerKeys",
    "MissingTokenError",
    "NonceSource",
    "Principal",
    "ReplayCache",
    "StatusLists",
    "UnavailableError",
    "UseDPoPNonceError",
    "VerificationError",
    "Verifier",
    "protected_resource_metadata",
]
