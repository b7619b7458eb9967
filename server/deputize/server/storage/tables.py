"""The schema, as SQLAlchemy Core tables.  Alembic migrations (``migrations/``) create it.

Times are integer Unix seconds: identical on SQLite and PostgreSQL, cheap to compare, and the
unit JWT claims use.  JSON-valued columns hold text we encode ourselves, so both databases
store exactly the same thing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text

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

#: Every token Deputize issued, for introspection and revocation (and, later, delegation).
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
    Index("ix_issued_tokens_client_id", "client_id"),
    Index("ix_issued_tokens_subject", "subject"),
    Index("ix_issued_tokens_parent_jti", "parent_jti"),
    Index("ix_issued_tokens_expires_at", "expires_at"),
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
