"""Initial schema: clients, signing keys, issued tokens, replay cache, server secrets.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("activated_at", sa.BigInteger, nullable=True),
        sa.Column("retired_at", sa.BigInteger, nullable=True),
        sa.Column("publish_until", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "issued_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("parent_jti", sa.String(64), nullable=True),
        sa.Column("jkt", sa.String(64), nullable=True),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_issued_tokens_client_id", "issued_tokens", ["client_id"])
    op.create_index("ix_issued_tokens_subject", "issued_tokens", ["subject"])
    op.create_index("ix_issued_tokens_parent_jti", "issued_tokens", ["parent_jti"])
    op.create_index("ix_issued_tokens_expires_at", "issued_tokens", ["expires_at"])
    op.create_table(
        "replay_cache",
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_replay_cache_expires_at", "replay_cache", ["expires_at"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("server_secrets", "replay_cache", "issued_tokens", "signing_keys", "clients"):
        op.drop_table(table)
