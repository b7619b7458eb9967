"""Deputize's agent SDK: get, exchange, hand off, redeem and use DPoP-bound tokens.

    agent = AgentClient(ISSUER, "scheduling-agent", client_key=load_key("auth-key.jwk"))
    token = agent.exchange(user_token, subject_token_type=JWT_TYPE, scope="docs:read",
                           resource=DOCS, task="quarterly-report")
    httpx.get(DOCS + "/documents/1", auth=agent.auth(token))

See docs/agent-sdk.md.
"""

from __future__ import annotations

from deputize.agent._core import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE, TOKEN_EXCHANGE
from deputize.agent.auth import DPoPAuth
from deputize.agent.client import AgentClient, AsyncAgentClient
from deputize.agent.errors import (
    AgentError,
    DiscoveryError,
    InvalidClientError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
    ResourceError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UseDPoPNonceError,
    raise_for_resource_error,
)
from deputize.agent.keys import key_from_jwk, load_key, private_jwk, save_key
from deputize.agent.token import Token

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ID_TOKEN_TYPE",
    "JWT_TYPE",
    "TOKEN_EXCHANGE",
    "AgentClient",
    "AgentError",
    "AsyncAgentClient",
    "DPoPAuth",
    "DiscoveryError",
    "InvalidClientError",
    "InvalidDPoPProofError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "OAuthError",
    "ResourceError",
    "Token",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UseDPoPNonceError",
    "key_from_jwk",
    "load_key",
    "private_jwk",
    "raise_for_resource_error",
    "save_key",
]
