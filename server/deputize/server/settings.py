"""Configuration: one YAML file, validated at start, with errors that name the key at fault.

Every optional setting has a default; secrets and the database URL may come from the
environment instead of the file (:func:`load_settings` is the only place that reads it).
``docs/configuration.md`` documents each key; ``deputize init`` writes a commented starter.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from deputize.keys import SIGNING_ALGORITHMS, JoseError, KeySet
from deputize.server.clients.secrets import MIN_SECRET_LENGTH, hash_secret, is_secret_hash
from deputize.server.configuration.approvals import ApprovalSettings, parse_approvals
from deputize.server.configuration.client_documents import (
    ClientDocumentSettings,
    read_client_documents,
)
from deputize.server.configuration.registration import RegistrationSettings, parse_registration
from deputize.server.configuration.sections import ConfigError as ConfigError
from deputize.server.configuration.sections import Section
from deputize.server.configuration.yaml_keys import load_yaml
from deputize.server.policy.document import PolicySource, read_policy, read_role_mapping

AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "private_key_jwt")
#: RFC 7591 §2: a public client (a browser or native app) that holds no credential.  It may
#: use only the authorization code and refresh grants, with PKCE and DPoP.
PUBLIC_CLIENT: Final = "none"
TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
AUTHORIZATION_CODE: Final = "authorization_code"
REFRESH_TOKEN: Final = "refresh_token"
#: OpenID CIBA Core 1.0 §4: an agent waits (poll mode) for its person to approve an action.
CIBA: Final = "urn:openid:params:grant-type:ciba"
GRANT_TYPES: Final = ("client_credentials", TOKEN_EXCHANGE, AUTHORIZATION_CODE, REFRESH_TOKEN, CIBA)
ENV_ISSUER: Final = "DEPUTIZE_ISSUER"
ENV_DATABASE_URL: Final = "DEPUTIZE_DATABASE_URL"
ENV_CLIENT_SECRET_PREFIX: Final = "DEPUTIZE_CLIENT_SECRET_"
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~:@/-]{1,128}")


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """A client allowed to call the token endpoint (RFC 7591 metadata names where they exist)."""

    client_id: str
    token_endpoint_auth_method: str
    client_secret_hash: str | None = None
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    grant_types: tuple[str, ...] = ("client_credentials",)
    scopes: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    delegate_agents: tuple[str, ...] = ()
    """Agents this client hands a signed-in user's authority to (named on the consent page)."""
    dpop_bound_access_tokens: bool = True
    agent: bool = False
    can_introspect: bool = False
    can_decide: bool = False
    """The client (a gateway, a resource server) may ask ``POST /decide``."""
    name: str | None = None
    max_delegation_depth: int | None = None
    """Deepest chain this client may extend (None: the global ``delegation.max_depth``)."""
    max_token_lifetime: int | None = None
    """Ceiling, in seconds, on the lifetime of tokens issued to this client by exchange."""
    require_pushed_authorization_requests: bool = False
    """RFC 9126 §6: this client's authorization requests must come through ``/par``."""
    registered: bool = False
    """Registered by itself at ``/register`` (RFC 7591), never an agent."""
    source: str = "configuration"
    """Where the client came from: ``configuration`` (the file or ``deputize clients add``) or
    ``metadata_document`` (its ``client_id`` is a URL whose document was fetched; never an
    agent, never stored; see ``client_documents/``)."""
    profile: str | None = None
    """The agent profile of the delegation policy this agent answers to (None: its client_id)."""

    def to_record(self) -> dict[str, Any]:
        """Plain JSON-able form (for the database and ``clients list``); never a secret."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "jwks": dict(self.jwks) if self.jwks is not None else None,
            "jwks_uri": self.jwks_uri,
            "grant_types": list(self.grant_types),
            "scopes": list(self.scopes),
            "audiences": list(self.audiences),
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "delegate_agents": list(self.delegate_agents),
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
            "agent": self.agent,
            "can_introspect": self.can_introspect,
            "can_decide": self.can_decide,
            "max_delegation_depth": self.max_delegation_depth,
            "max_token_lifetime": self.max_token_lifetime,
            "profile": self.profile,
            "require_pushed_authorization_requests": self.require_pushed_authorization_requests,
        } | ({"registered": True} if self.registered else {})


@dataclass(frozen=True, kw_only=True)
class DelegationGrant:
    """A configured authorisation: ``subject`` lets ``agents`` act for them (rule 4 of the
    delegation contract), until consent recorded at sign-in replaces it."""

    subject: str
    """The user's ``sub``; ``*`` for every user."""
    agents: tuple[str, ...]
    issuer: str | None = None
    """Only users from this trusted issuer (None: any trusted issuer, or Deputize itself)."""
    scopes: tuple[str, ...] | None = None
    """Cap on the scopes these agents may hold for the user (None: no extra cap)."""


@dataclass(frozen=True, kw_only=True)
class TrustedIssuer:
    """An external issuer whose tokens Deputize will accept as subject tokens (token exchange)."""

    issuer: str
    audience: str
    jwks_uri: str | None = None
    jwks: Mapping[str, Any] | None = None
    roles_claim: str | None = None
    """The claim of this issuer's tokens that names the person's groups or roles."""
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Each value of ``roles_claim`` and the policy roles it gives (nothing unmapped counts)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    issuer: str
    database_url: str = "sqlite:///deputize.db"
    database_connect_timeout: float = 3.0
    database_statement_timeout: float = 5.0
    database_pool_timeout: float = 2.0
    signing_alg: str = "ES256"
    access_token_lifetime: int = 300
    dpop_require_nonce: bool = True
    dpop_proof_max_age: int = 60
    dpop_nonce_lifetime: int = 300
    dpop_require_subject_token_ath: bool = False
    """Whether a token exchange's proof must carry ``ath`` for a key-bound subject token
    (decision 0010); the key match is required either way."""
    client_assertion_max_lifetime: int = 300
    jwks_max_age: int = 300
    key_refresh_interval: int = 30
    max_body_bytes: int = 16 * 1024
    max_header_bytes: int = 32 * 1024
    clients: tuple[ClientConfig, ...] = ()
    trusted_issuers: tuple[TrustedIssuer, ...] = ()
    delegation_max_depth: int = 4
    handoff_lifetime: int = 60
    forbidden_agent_scopes: tuple[str, ...] = ()
    delegation_grants: tuple[DelegationGrant, ...] = ()
    status_list_ttl: int = 60
    status_list_server_cache: int = 5
    session_lifetime: int = 8 * 3600
    max_failed_sign_ins: int = 5
    sign_in_lockout: int = 900
    code_lifetime: int = 60
    require_pushed_authorization_requests: bool = False
    """RFC 9126 §5: every authorization request must come through ``/par``."""
    pushed_request_lifetime: int = 60
    """RFC 9126 §2.2 ``expires_in``: seconds a pushed request's ``request_uri`` stays usable."""
    consent_lifetime: int = 90 * 86_400
    id_token_lifetime: int = 300
    refresh_token_lifetime: int = 86_400
    refresh_token_max_lifetime: int = 30 * 86_400
    policy: PolicySource | None = field(default=None, compare=False)  # docs/policy.md
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    approvals: ApprovalSettings = field(default_factory=ApprovalSettings)
    client_documents: ClientDocumentSettings = field(default_factory=ClientDocumentSettings)
    source: str = field(default="<defaults>", compare=False)

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    @property
    def par_endpoint(self) -> str:
        """RFC 9126 §5 ``pushed_authorization_request_endpoint``."""
        return self.issuer + "/par"

    def endpoint(self, path: str) -> str:
        return self.issuer + path

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.database_url, base=Path(self.source).parent)


def async_database_url(url: str, *, base: Path = Path()) -> str:
    """Map a user-facing database URL onto the async driver Deputize runs it with.

    ``sqlite:///relative.db`` is resolved against ``base`` (the config file's folder) so the
    server finds the same file whatever its working directory.
    """
    scheme, _, rest = url.partition("://")
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        path = rest[1:] if rest.startswith("/") else rest
        if path in ("", ":memory:"):
            raise ConfigError(
                "database.url: an in-memory SQLite database is lost on restart; name a file"
            )
        resolved = path if path.startswith("/") else str((base / path).resolve())
        return f"sqlite+aiosqlite:///{resolved}"
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    raise ConfigError(
        f"database.url: unsupported scheme {scheme!r}; expected sqlite:///FILE or postgresql://..."
    )


# --- reading and validating ---------------------------------------------------------------------


def _url(section: Section, name: str, *, required: bool, https_unless_loopback: bool) -> str | None:
    value = section.string(name, required=required)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{section.key(name)}: expected an http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{section.key(name)}: must not have a query or fragment")
    if https_unless_loopback and parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"{section.key(name)}: must use https (plain http is allowed only for localhost)"
        )
    return value


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _jwks(section: Section, name: str) -> Mapping[str, Any] | None:
    value = section.raw(name)
    if value is None:
        return None
    try:
        keys = KeySet.from_jwks(json.loads(json.dumps(value)))
    except (JoseError, TypeError, ValueError) as exc:
        detail = exc.description if isinstance(exc, JoseError) else str(exc)
        raise ConfigError(f"{section.key(name)}: not a usable public JWK Set: {detail}") from None
    if not len(keys):
        raise ConfigError(f"{section.key(name)}: holds no signing key")
    result: Mapping[str, Any] = value
    return result


def _scopes(section: Section, name: str) -> tuple[str, ...]:
    scopes = section.strings(name)
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ConfigError(
                f"{section.key(name)}: {scope!r} is not a valid scope token (RFC 6749 §3.3)"
            )
    return scopes


def secret_env_name(client_id: str) -> str:
    return ENV_CLIENT_SECRET_PREFIX + re.sub(r"[^A-Z0-9]", "_", client_id.upper())


def parse_client(
    data: Any, path: str, env: Mapping[str, str], *, registered: bool = False
) -> ClientConfig:
    """``registered``: a client that registered itself (``/register``); never read from a file."""
    s = Section(data, path)
    client_id = s.string("client_id", required=True)
    assert client_id is not None
    if not _CLIENT_ID.fullmatch(client_id):
        raise ConfigError(
            f"{s.key('client_id')}: use 1-128 letters, digits and . _ ~ : @ / -; got {client_id!r}"
        )
    method = s.choice("token_endpoint_auth_method", (*AUTH_METHODS, PUBLIC_CLIENT))
    secret_hash = s.string("client_secret_hash")
    env_secret = env.get(secret_env_name(client_id))
    if env_secret is not None:
        if len(env_secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{secret_env_name(client_id)}: client secrets must be at least "
                f"{MIN_SECRET_LENGTH} characters (use `deputize clients add` to generate one)"
            )
        secret_hash = hash_secret(env_secret)
    if secret_hash is not None and not is_secret_hash(secret_hash):
        raise ConfigError(
            f"{s.key('client_secret_hash')}: expected 'sha256:...' as printed by "
            "`deputize clients hash-secret`; never put a plain secret here"
        )
    jwks = _jwks(s, "jwks")
    jwks_uri = _url(s, "jwks_uri", required=False, https_unless_loopback=True)
    if method == "private_key_jwt":
        if (jwks is None) == (jwks_uri is None):
            raise ConfigError(f"{path}: private_key_jwt needs exactly one of jwks or jwks_uri")
        if secret_hash is not None:
            raise ConfigError(f"{path}: a private_key_jwt client must not have a secret")
    elif method == PUBLIC_CLIENT:
        if secret_hash is not None or jwks is not None or jwks_uri is not None:
            raise ConfigError(f"{path}: a public client (none) holds no secret and no keys")
    else:
        if secret_hash is None:
            raise ConfigError(
                f"{s.key('client_secret_hash')}: required for {method} "
                f"(or set {secret_env_name(client_id)})"
            )
        if jwks is not None or jwks_uri is not None:
            raise ConfigError(f"{path}: jwks/jwks_uri are only for private_key_jwt clients")
    grant_types = s.strings("grant_types", ("client_credentials",))
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise ConfigError(
                f"{s.key('grant_types')}: expected values from "
                f"{', '.join(GRANT_TYPES)}; got {grant!r}"
            )
    audiences = s.strings("audiences")
    for audience in audiences:
        if not urlsplit(audience).scheme:
            raise ConfigError(
                f"{s.key('audiences')}: {audience!r} is not an absolute URI (RFC 8707)"
            )
    redirect_uris = _redirect_uris(s, "redirect_uris")
    post_logout = _redirect_uris(s, "post_logout_redirect_uris")
    delegate_agents = s.strings("delegate_agents")
    for agent_id in delegate_agents:
        if not _CLIENT_ID.fullmatch(agent_id):
            raise ConfigError(f"{s.key('delegate_agents')}: {agent_id!r} is not a client_id")
    if AUTHORIZATION_CODE in grant_types and not redirect_uris:
        raise ConfigError(f"{s.key('redirect_uris')}: required for the authorization_code grant")
    if REFRESH_TOKEN in grant_types and AUTHORIZATION_CODE not in grant_types:
        raise ConfigError(
            f"{s.key('grant_types')}: refresh_token is only issued with authorization_code"
        )
    if method == PUBLIC_CLIENT and set(grant_types) - {AUTHORIZATION_CODE, REFRESH_TOKEN}:
        raise ConfigError(
            f"{s.key('grant_types')}: a public client (none) may only use authorization_code "
            "and refresh_token"
        )
    dpop_bound = s.boolean("dpop_bound_access_tokens", True)
    if method == PUBLIC_CLIENT and not dpop_bound and not registered:
        # A registered client's false means "not forced"; registration/policy.py decides.
        raise ConfigError(
            f"{s.key('dpop_bound_access_tokens')}: must be true for a public client (none): "
            "its tokens, refresh tokens included, are bound to its DPoP key (RFC 9449 §5)"
        )
    agent = s.boolean("agent", False)
    if agent and REFRESH_TOKEN in grant_types:
        raise ConfigError(
            f"{s.key('grant_types')}: an agent (agent: true) gets no refresh tokens; it "
            "re-exchanges from its parent, or the person signs in again"
        )
    if CIBA in grant_types and not agent:  # an agent asks its person to approve an action
        raise ConfigError(f"{s.key('grant_types')}: {CIBA} is for agents (agent: true) only")
    if agent and not dpop_bound:
        raise ConfigError(
            f"{s.key('dpop_bound_access_tokens')}: must be true for an agent (agent: true); "
            "agents only ever hold sender-constrained tokens"
        )
    profile = s.string("profile")
    if profile is not None and not agent:
        raise ConfigError(f"{s.key('profile')}: only an agent (agent: true) answers to a profile")
    client = ClientConfig(
        client_id=client_id,
        profile=profile,
        name=s.string("name"),
        token_endpoint_auth_method=method,
        client_secret_hash=secret_hash,
        jwks=jwks,
        jwks_uri=jwks_uri,
        grant_types=grant_types,
        scopes=_scopes(s, "scopes"),
        audiences=audiences,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        delegate_agents=delegate_agents,
        dpop_bound_access_tokens=dpop_bound,
        agent=agent,
        can_introspect=s.boolean("can_introspect", False),
        can_decide=s.boolean("can_decide", False),
        max_delegation_depth=_optional_int(s, "max_delegation_depth", low=0, high=16),
        max_token_lifetime=_optional_int(s, "max_token_lifetime", low=10, high=86_400),
        require_pushed_authorization_requests=s.boolean(
            "require_pushed_authorization_requests", False
        ),
        registered=registered,
    )
    s.done()
    return client


def check_agent_scopes(client: ClientConfig, forbidden: Sequence[str], path: str) -> None:
    """Refuse an agent registered for a scope ``delegation.forbidden_agent_scopes`` lists: no
    grant would ever issue it, so the registration can only mislead (``path`` names the client
    in the error, e.g. ``clients[2]``)."""
    listed = [scope for scope in client.scopes if scope in forbidden] if client.agent else []
    if listed:
        raise ConfigError(
            f"{path}.scopes: {listed[0]!r} is in delegation.forbidden_agent_scopes, which is "
            "never issued to an agent (agent: true); remove it from the agent's scopes"
        )


def _redirect_uris(section: Section, name: str) -> tuple[str, ...]:
    """RFC 6749 §3.1.2 / RFC 9700 §2.1: absolute, no fragment, compared as exact strings.
    ``http`` only on loopback (RFC 8252 §7.3); other schemes must be private-use ones (§7.1)."""
    uris = section.strings(name)
    for uri in uris:
        try:
            parts = urlsplit(uri)
        except ValueError:
            parts = urlsplit("")
        if not parts.scheme or "#" in uri:
            raise ConfigError(f"{section.key(name)}: {uri!r} must be absolute, without fragment")
        if parts.scheme in ("http", "https") and not parts.hostname:
            raise ConfigError(f"{section.key(name)}: {uri!r} has no host")
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            raise ConfigError(
                f"{section.key(name)}: {uri!r} must use https (http only for localhost)"
            )
        if parts.scheme not in ("http", "https") and "." not in parts.scheme:
            raise ConfigError(
                f"{section.key(name)}: {uri!r}: a custom scheme must be a reverse domain name "
                "such as com.example.app (RFC 8252 §7.1)"
            )
    return uris


def _optional_int(section: Section, name: str, *, low: int, high: int) -> int | None:
    if section.raw(name) is None:
        return None
    return section.integer(name, low, low=low, high=high)


def _delegation_grant(data: Any, path: str) -> DelegationGrant:
    s = Section(data, path)
    subject = s.string("subject", required=True)
    agents = s.strings("agents")
    if not agents:
        raise ConfigError(f"{s.key('agents')}: required, expected a list of agent client_ids")
    issuer = _url(s, "issuer", required=False, https_unless_loopback=True)
    scopes = _scopes(s, "scopes") if s.raw("scopes") is not None else None
    s.done()
    assert subject is not None
    return DelegationGrant(subject=subject, agents=agents, issuer=issuer, scopes=scopes)


def _trusted_issuer(data: Any, path: str) -> TrustedIssuer:
    s = Section(data, path)
    issuer = _url(s, "issuer", required=True, https_unless_loopback=True)
    audience = s.string("audience", required=True)
    jwks_uri = _url(s, "jwks_uri", required=False, https_unless_loopback=True)
    jwks = _jwks(s, "jwks")
    if (jwks is None) == (jwks_uri is None):
        raise ConfigError(f"{path}: needs exactly one of jwks_uri or jwks")
    roles_claim, roles = read_role_mapping(s)
    s.done()
    assert issuer is not None and audience is not None
    return TrustedIssuer(
        issuer=issuer, audience=audience, jwks_uri=jwks_uri, jwks=jwks,
        roles_claim=roles_claim, roles=roles,
    )  # fmt: skip


def check_issuer(issuer: str, key: str = "issuer") -> None:
    """Refuse an issuer clients could not use; ``key`` names where it came from (the config
    key, or ``--issuer`` for ``deputize init``)."""
    try:
        parts = urlsplit(issuer)
    except ValueError:  # such as an unclosed IPv6 bracket
        raise ConfigError(f"{key}: not a URL: {issuer!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"{key}: expected an http(s) URL without query or fragment, got {issuer!r}"
        )
    if parts.scheme != "https" and not _is_loopback(parts.hostname):
        raise ConfigError(f"{key}: must use https (RFC 8414 §2); plain http only for localhost")
    if issuer.endswith("/"):
        raise ConfigError(f"{key}: must not end with '/' (it is compared as an exact string)")


def parse_settings(data: Any, *, env: Mapping[str, str], source: str = "<config>") -> Settings:
    top = Section(data, "")
    issuer = env.get(ENV_ISSUER) or top.string("issuer", required=True)
    top.seen.add("issuer")
    assert issuer is not None
    check_issuer(issuer)

    database = top.section("database")
    database_url = env.get(ENV_DATABASE_URL) or database.string("url", "sqlite:///deputize.db")
    database.seen.add("url")
    assert database_url is not None
    connect_timeout = database.seconds("connect_timeout", 3.0, low=0.1, high=60)
    statement_timeout = database.seconds("statement_timeout", 5.0, low=0.1, high=600)
    pool_timeout = database.seconds("pool_timeout", 2.0, low=0.1, high=60)
    database.done()
    try:  # refuse at check-config what the server could not open
        async_database_url(database_url)
    except ConfigError as exc:
        if env.get(ENV_DATABASE_URL):
            raise ConfigError(str(exc).replace("database.url", ENV_DATABASE_URL, 1)) from None
        raise

    tokens = top.section("tokens")
    signing_alg = tokens.choice("signing_alg", SIGNING_ALGORITHMS, "ES256")
    lifetime = tokens.integer("access_token_lifetime", 300, low=10, high=86_400)
    id_token_lifetime = tokens.integer("id_token_lifetime", 300, low=10, high=86_400)
    refresh_lifetime = tokens.integer("refresh_token_lifetime", 86_400, low=60, high=31_536_000)
    refresh_max = tokens.integer("refresh_token_max_lifetime", 30 * 86_400, low=60, high=31_536_000)
    if refresh_max < refresh_lifetime:
        raise ConfigError(
            "tokens.refresh_token_max_lifetime: must be at least tokens.refresh_token_lifetime"
        )
    tokens.done()

    sign_in = top.section("sign_in")
    session_lifetime = sign_in.integer("session_lifetime", 8 * 3600, low=60, high=2_592_000)
    max_failed = sign_in.integer("max_failed_attempts", 5, low=1, high=100)
    lockout = sign_in.integer("lockout", 900, low=10, high=86_400)
    code_lifetime = sign_in.integer("code_lifetime", 60, low=10, high=600)
    consent_lifetime = sign_in.integer("consent_lifetime", 90 * 86_400, low=60, high=3 * 31_536_000)
    require_par = sign_in.boolean("require_pushed_authorization_requests", False)
    pushed_lifetime = sign_in.integer("pushed_request_lifetime", 60, low=5, high=600)
    sign_in.done()

    dpop = top.section("dpop")
    require_nonce = dpop.boolean("require_nonce", True)
    proof_max_age = dpop.integer("proof_max_age", 60, low=5, high=600)
    nonce_lifetime = dpop.integer("nonce_lifetime", 300, low=30, high=86_400)
    subject_token_ath = dpop.boolean("require_subject_token_ath", False)
    dpop.done()

    client_auth = top.section("client_authentication")
    assertion_max = client_auth.integer("assertion_max_lifetime", 300, low=10, high=3600)
    client_auth.done()

    keys = top.section("keys")
    jwks_max_age = keys.integer("jwks_max_age", 300, low=0, high=86_400)
    refresh = keys.integer("refresh_interval", 30, low=1, high=3600)
    keys.done()

    status_list = top.section("status_list")
    status_ttl = status_list.integer("ttl", 60, low=1, high=3600)
    status_cache = status_list.integer("server_cache", 5, low=0, high=600)
    status_list.done()

    http = top.section("http")
    max_body = http.integer("max_body_bytes", 16 * 1024, low=1024, high=1024 * 1024)
    max_header = http.integer("max_header_bytes", 32 * 1024, low=4096, high=1024 * 1024)
    http.done()

    delegation = top.section("delegation")
    max_depth = delegation.integer("max_depth", 4, low=1, high=16)
    handoff_lifetime = delegation.integer("handoff_lifetime", 60, low=5, high=600)
    forbidden = _scopes(delegation, "forbidden_agent_scopes")
    raw_grants = delegation.raw("grants") or []
    if not isinstance(raw_grants, list):
        raise ConfigError("delegation.grants: expected a list")
    grants = tuple(
        _delegation_grant(g, f"delegation.grants[{i}]") for i, g in enumerate(raw_grants)
    )
    delegation.done()

    registration = parse_registration(top.section("registration"), env)
    approvals = parse_approvals(top.section("approvals"), env)
    client_documents = read_client_documents(top.section("client_documents"))

    raw_clients = top.raw("clients") or []
    if not isinstance(raw_clients, list):
        raise ConfigError("clients: expected a list of clients")
    clients = tuple(parse_client(c, f"clients[{i}]", env) for i, c in enumerate(raw_clients))
    seen_ids: set[str] = set()
    for i, client in enumerate(clients):
        if client.client_id in seen_ids:
            raise ConfigError(f"clients[{i}].client_id: {client.client_id!r} is defined twice")
        seen_ids.add(client.client_id)
        check_agent_scopes(client, forbidden, f"clients[{i}]")

    base = Path(source).parent if source != "<config>" else Path()
    policy = read_policy(top.raw("policy"), base=base)

    raw_issuers = top.raw("trusted_issuers") or []
    if not isinstance(raw_issuers, list):
        raise ConfigError("trusted_issuers: expected a list")
    trusted = tuple(_trusted_issuer(t, f"trusted_issuers[{i}]") for i, t in enumerate(raw_issuers))
    top.done()
    return Settings(
        issuer=issuer,
        database_url=database_url,
        database_connect_timeout=connect_timeout,
        database_statement_timeout=statement_timeout,
        database_pool_timeout=pool_timeout,
        signing_alg=signing_alg,
        access_token_lifetime=lifetime,
        dpop_require_nonce=require_nonce,
        dpop_proof_max_age=proof_max_age,
        dpop_nonce_lifetime=nonce_lifetime,
        dpop_require_subject_token_ath=subject_token_ath,
        client_assertion_max_lifetime=assertion_max,
        jwks_max_age=jwks_max_age,
        key_refresh_interval=refresh,
        max_body_bytes=max_body,
        max_header_bytes=max_header,
        clients=clients,
        trusted_issuers=trusted,
        delegation_max_depth=max_depth,
        handoff_lifetime=handoff_lifetime,
        forbidden_agent_scopes=forbidden,
        delegation_grants=grants,
        status_list_ttl=status_ttl,
        status_list_server_cache=status_cache,
        session_lifetime=session_lifetime,
        max_failed_sign_ins=max_failed,
        sign_in_lockout=lockout,
        code_lifetime=code_lifetime,
        require_pushed_authorization_requests=require_par,
        pushed_request_lifetime=pushed_lifetime,
        consent_lifetime=consent_lifetime,
        id_token_lifetime=id_token_lifetime,
        refresh_token_lifetime=refresh_lifetime,
        refresh_token_max_lifetime=refresh_max,
        policy=policy,
        registration=registration,
        approvals=approvals,
        client_documents=client_documents,
        source=source,
    )


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the YAML file at ``path``; the environment overrides secrets and URLs."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration file ({exc.strerror})") from None
    data = load_yaml(text, str(file))
    return parse_settings(data, env=os.environ if env is None else env, source=str(file.resolve()))
