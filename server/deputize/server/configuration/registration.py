"""The ``registration`` section: who may register clients at ``/register`` (RFC 7591), and what.

Read here rather than in ``settings.py`` to keep that module small; like the rest of this
package it imports nothing of the server (``registration/policy.py`` applies these values).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from deputize.server.configuration.sections import ConfigError, Section

OFF: Final = "off"
OPEN: Final = "open"
INITIAL_ACCESS_TOKEN: Final = "initial_access_token"
MODES: Final = (OFF, OPEN, INITIAL_ACCESS_TOKEN)
#: What a registered client may ask for at most: never token exchange (agents are configured
#: by operators), never a grant Deputize does not implement.
REGISTRABLE_GRANTS: Final = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS: Final = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
#: An operator's token for ``initial_access_token`` mode, given in the environment (plain).
ENV_INITIAL_ACCESS_TOKEN: Final = "DEPUTIZE_REGISTRATION_TOKEN"
_MIN_TOKEN_LENGTH: Final = 32


def token_hash(token: str) -> str:
    """The ``sha256:`` form ``deputize clients hash-secret`` prints (``clients/secrets.py``)."""
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    return "sha256:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, kw_only=True)
class RegistrationSettings:
    mode: str = OFF
    """``off`` (no ``/register``), ``open`` (anyone), ``initial_access_token`` (RFC 7591 §3)."""
    initial_access_tokens: tuple[str, ...] = ()
    """SHA-256 hashes (``sha256:...``) of the tokens operators hand out."""
    allowed_grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    allowed_scopes: tuple[str, ...] = ()
    """Scopes a registered client may hold, besides ``openid profile email``."""
    audiences: tuple[str, ...] = ()
    """Resource indicators (RFC 8707) every registered client may ask tokens for."""
    allowed_auth_methods: tuple[str, ...] = AUTH_METHODS
    rate_limit: int = 10
    """Registrations per minute from one source address, per process (0: no limit)."""
    unused_expiry: int = 7 * 86_400
    """Seconds after which a registration never used at ``/token`` is removed (0: never)."""
    allow_bearer_for_public_clients: bool = False
    """Registered public clients that send no DPoP proof get bearer tokens (docs/security.md)."""


def parse_registration(section: Section, env: Mapping[str, str]) -> RegistrationSettings:
    if section.data.get("mode") is False:  # YAML 1.1 reads a bare `off` as false
        section.seen.add("mode")
        mode = OFF
    else:
        mode = section.choice("mode", MODES, OFF)
    hashes = list(section.strings("initial_access_tokens"))
    for value in hashes:
        if not (value.startswith("sha256:") and len(value) == 50):
            raise ConfigError(
                f"{section.key('initial_access_tokens')}: expected 'sha256:...' as printed by "
                "`deputize clients hash-secret`; never put a plain token here (or set "
                f"{ENV_INITIAL_ACCESS_TOKEN})"
            )
    from_env = env.get(ENV_INITIAL_ACCESS_TOKEN)
    if from_env:
        if len(from_env) < _MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"{ENV_INITIAL_ACCESS_TOKEN}: must be at least {_MIN_TOKEN_LENGTH} characters"
            )
        hashes.append(token_hash(from_env))
    if mode == INITIAL_ACCESS_TOKEN and not hashes:
        raise ConfigError(
            f"{section.key('initial_access_tokens')}: required for mode initial_access_token "
            f"(or set {ENV_INITIAL_ACCESS_TOKEN})"
        )
    grants = section.strings("allowed_grant_types", ("authorization_code", "refresh_token"))
    for grant in grants:
        if grant not in REGISTRABLE_GRANTS:
            raise ConfigError(
                f"{section.key('allowed_grant_types')}: expected values from "
                f"{', '.join(REGISTRABLE_GRANTS)}; got {grant!r}"
            )
    scopes = section.strings("allowed_scopes")
    for scope in scopes:
        if not scope.isascii() or not scope.isprintable() or " " in scope or '"' in scope:
            raise ConfigError(f"{section.key('allowed_scopes')}: {scope!r} is not a scope token")
    audiences = section.strings("audiences")
    for audience in audiences:
        if ":" not in audience or "#" in audience:
            raise ConfigError(
                f"{section.key('audiences')}: {audience!r} is not an absolute URI (RFC 8707)"
            )
    methods = section.strings("allowed_auth_methods", AUTH_METHODS)
    for method in methods:
        if method not in AUTH_METHODS:
            raise ConfigError(
                f"{section.key('allowed_auth_methods')}: expected values from "
                f"{', '.join(AUTH_METHODS)}; got {method!r}"
            )
    result = RegistrationSettings(
        mode=mode,
        initial_access_tokens=tuple(hashes),
        allowed_grant_types=grants,
        allowed_scopes=scopes,
        audiences=audiences,
        allowed_auth_methods=methods,
        rate_limit=section.integer("rate_limit", 10, low=0, high=10_000),
        unused_expiry=section.integer("unused_expiry", 7 * 86_400, low=0, high=31_536_000),
        allow_bearer_for_public_clients=section.boolean("allow_bearer_for_public_clients", False),
    )
    section.done()
    return result
