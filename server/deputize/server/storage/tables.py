"""The schema, as SQLAlchemy Core tables.  Alembic migrations (``migrations/``) create it.

Times are integer Unix seconds: identical on SQLite and PostgreSQL, cheap to compare, and the
unit JWT claims use.  JSON-valued columns hold text we encode ourselves, so both databases
store exactly the same thing.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

#: Clients registered at runtime (``deputize clients add``).  Clients from the config file are
#: not copied here; the file stays their single source of truth.
clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("secret_hash", String(64), nullable=True),
    Column("metadata_json", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

#: Clients that registered themselves (RFC 7591), beside their row in ``clients``: the hash of
#: the RFC 7592 registration access token, the metadata as registered (returned by a read),
#: and when the client was first seen at ``/token`` (NULL: never; migration 0008).
registrations = Table(
    "registrations",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Index("ix_registrations_created_at", "created_at"),
)

#: Signing keys shared by every instance.  ``state``: next (published, not yet signing),
#: active (signs), retired (published until ``publish_until``, then dropped).
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("activated_at", BigInteger, nullable=True),
    Column("retired_at", BigInteger, nullable=True),
    Column("publish_until", BigInteger, nullable=True),
)

#: Every token Deputize issued, for introspection, revocation and delegation.  ``kind`` is
#: ``client`` (a client's own token), ``delegation`` (acts for a subject) or ``handoff`` (a
#: single-use token one agent passes to another); ``parent_jti`` links a hop to its parent so
#: revocation cascades; ``actor`` is the current actor; ``task`` flows down the chain.
issued_tokens = Table(
    "issued_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("parent_jti", String(64), nullable=True),
    Column("jkt", String(64), nullable=True),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("kind", String(16), nullable=False, server_default="client"),
    Column("task", String(128), nullable=True),
    Column("actor", String(128), nullable=True),
    Column("redeemed_at", BigInteger, nullable=True),
    Column("status_idx", BigInteger, nullable=True),
    Index("ix_issued_tokens_client_id", "client_id"),
    Index("ix_issued_tokens_subject", "subject"),
    Index("ix_issued_tokens_parent_jti", "parent_jti"),
    Index("ix_issued_tokens_expires_at", "expires_at"),
    Index("ix_issued_tokens_task", "task"),
    Index("ix_issued_tokens_actor", "actor"),
    Index(
        "ix_issued_tokens_revoked_status",
        "status_idx",
        sqlite_where=text("revoked_at IS NOT NULL"),
        postgresql_where=text("revoked_at IS NOT NULL"),
    ),
)

#: The next free token status list index (one row, ``tokens``).  Instances reserve blocks of
#: indexes from it, so minting a token costs no extra round trip (``tokens/status_list.py``).
status_list_allocator = Table(
    "status_list_allocator",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("next_idx", BigInteger, nullable=False),
)

#: One-time-use identifiers (DPoP proof jti, client assertion jti) until they expire.
replay_cache = Table(
    "replay_cache",
    metadata,
    Column("key", String(320), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_replay_cache_expires_at", "expires_at"),
)

#: Server-wide random secrets (e.g. the DPoP nonce key), created on first start.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

#: Append-only audit trail, as several independent hash chains so concurrent transactions do
#: not all queue on one head row.  Within a chain, ``seq`` counts from 1 without gaps and each
#: entry's ``hash`` covers its fields and ``prev_hash``, so an edited, deleted or reordered entry
#: breaks the chain (``deputize audit --verify``).  ``id`` orders entries across chains, as they
#: were written (numbered by the database, migration 0007); ``at_us`` is the time in
#: microseconds and ``kid`` a signing key's id (both NULL in entries older than 0007).
audit_log = Table(
    "audit_log",
    metadata,
    Column("chain", SmallInteger, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("event", String(32), nullable=False),
    Column("client_id", String(128), nullable=True),
    Column("subject", String(255), nullable=True),
    Column("actors", Text, nullable=True),
    Column("task", String(128), nullable=True),
    Column("jti", String(64), nullable=True),
    Column("parent_jti", String(64), nullable=True),
    Column("jkt", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("details", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=True),
    Column("kid", String(64), nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_id", "id", unique=True),
    Index("ix_audit_log_subject", "subject"),
    Index("ix_audit_log_task", "task"),
)

#: The newest entry of each audit chain; a chain's row is locked while an entry is appended.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", SmallInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# --- people: users, sign-in, consent, authorization codes, refresh tokens (migration 0004) ---

#: People who sign in.  ``sub`` is the user name, fixed at creation and never reused (users are
#: disabled, never deleted), so it can name the user in config, audit and revocation alike.
users = Table(
    "users",
    metadata,
    Column("sub", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("name", String(255), nullable=True),
    Column("email", String(320), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("password_changed_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
    # The delegation policy's roles, space-separated (migration 0010); NULL: none.
    Column("roles", Text, nullable=True),
)

#: Failed sign-in attempts per attempted user name (known or not, so lockout reveals nothing).
sign_in_throttle = Table(
    "sign_in_throttle",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=True),
)

#: Browser sessions; the cookie holds a random value, the table only its SHA-256.
browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("sub", String(64), nullable=False),
    Column("auth_time", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_browser_sessions_sub", "sub"),
    Index("ix_browser_sessions_expires_at", "expires_at"),
)

#: What a user allowed a client (and the agents it acts through) to do for them.
consents = Table(
    "consents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("sub", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("agents", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("authorization_details", Text, nullable=True),  # RFC 9396, JSON (migration 0011)
    Index("ix_consents_sub", "sub"),
)

#: Authorization codes (RFC 6749 §4.1), stored as SHA-256; single use, seconds-long.
authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("sub", String(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("resources", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("nonce", String(512), nullable=True),
    Column("dpop_jkt", String(64), nullable=True),
    Column("auth_time", BigInteger, nullable=False),
    Column("consent_id", String(32), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("grant_jti", String(64), nullable=True),
    Column("authorization_details", Text, nullable=True),  # RFC 9396, JSON (migration 0011)
    Index("ix_authorization_codes_expires_at", "expires_at"),
)

#: Pushed authorization requests (RFC 9126, migration 0008): the ``request_uri``'s SHA-256,
#: the pushing client, the request's parameters (JSON pairs), seconds-long and single use.
pushed_requests = Table(
    "pushed_requests",
    metadata,
    Column("request_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("params", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_pushed_requests_expires_at", "expires_at"),
)

#: Refresh tokens, stored as SHA-256.  A family is every token rotated from one sign-in; its
#: ``grant_jti`` is the ledger row all of the family's access tokens hang under.
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family", String(64), nullable=False),
    Column("grant_jti", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("sub", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("resources", Text, nullable=False),
    Column("jkt", String(64), nullable=True),
    Column("auth_time", BigInteger, nullable=False),
    Column("consent_id", String(32), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("family_expires_at", BigInteger, nullable=False),
    Column("rotated_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("authorization_details", Text, nullable=True),  # RFC 9396, JSON (migration 0011)
    Index("ix_refresh_tokens_family", "family"),
    Index("ix_refresh_tokens_sub", "sub"),
    Index("ix_refresh_tokens_expires_at", "expires_at"),
)

#: Approval requests (OpenID CIBA, poll mode; migration 0012): a supervised action an agent
#: asked for, waiting for its person.  ``auth_req_hash`` is the SHA-256 of the ``auth_req_id``.
backchannel_requests = Table(
    "backchannel_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("auth_req_hash", String(64), nullable=False, unique=True),
    Column("client_id", String(128), nullable=False),
    Column("sub", String(255), nullable=False),
    Column("actors", Text, nullable=False),
    Column("parent_jti", String(64), nullable=False),
    Column("jkt", String(64), nullable=False),
    Column("task", String(128), nullable=True),
    Column("scopes", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("authorization_details", Text, nullable=False),
    Column("binding_message", String(256), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("interval", Integer, nullable=False),
    Column("last_polled_at", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(255), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Index("ix_backchannel_requests_sub", "sub"),
    Index("ix_backchannel_requests_expires_at", "expires_at"),
)
