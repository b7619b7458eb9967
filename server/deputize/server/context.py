"""Everything a request handler needs, built once at start-up and shared read-only."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from deputize.keys import KeySet
from deputize.keys.nonces import NonceSource
from deputize.server.approvals.webhook import Webhook
from deputize.server.client_documents import ClientDocuments
from deputize.server.clients.recent_misses import RecentMisses
from deputize.server.clients.remote_jwks import RemoteJWKS
from deputize.server.http.turns import Turns
from deputize.server.keyring import Keyring
from deputize.server.registration.policy import RateLimiter
from deputize.server.settings import ClientConfig, Settings, TrustedIssuer
from deputize.server.storage.database import Database
from deputize.server.tokens.status_list import StatusAllocator, StatusListPublisher
from deputize.server.tokens.verified_tokens import VerifiedTokens


@dataclass(slots=True)
class ServerContext:
    settings: Settings
    db: Database
    keyring: Keyring
    nonces: NonceSource
    remote_jwks: RemoteJWKS
    http: httpx.AsyncClient
    static_clients: Mapping[str, ClientConfig]
    trusted_issuers: Mapping[str, TrustedIssuer]
    status_allocator: StatusAllocator
    status_lists: StatusListPublisher
    clock: Callable[[], float] = time.time
    #: Inline client JWKS parsed once per client (config is immutable for the process's life).
    inline_jwks: dict[str, KeySet] = field(default_factory=dict)
    metadata_json: bytes = b""
    #: ``audience`` values recently found not to name a registered client (token exchange).
    non_clients: RecentMisses = field(default_factory=lambda: RecentMisses(ttl=5.0))
    #: Our own tokens already verified, by token string (``own_tokens.verify_own_token``).
    own_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)
    #: Key for the sign-in pages' CSRF tokens, shared by all instances (``http/web.py``).
    page_key: bytes = b""
    #: Token requests start a few per pass of the event loop (``http/turns.py``).
    turns: Turns = field(default_factory=Turns)
    #: ``POST /register`` requests per source address (``registration.rate_limit``).
    registration_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0))
    #: Clients named by a metadata document URL (None: ``client_documents.enabled`` is off).
    client_documents: ClientDocuments | None = None
    #: Tells a platform of each new approval request (None: ``approvals.webhook`` is unset).
    webhook: Webhook | None = None
