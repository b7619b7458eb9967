"""Delegation ledger columns (kind, task, actor, redeemed_at) and the hash-chained audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AUDIT_CHAINS = 16


def upgrade() -> None:
    with op.batch_alter_table("issued_tokens") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="client"))
        batch.add_column(sa.Column("task", sa.String(128), nullable=True))
        batch.add_column(sa.Column("actor", sa.String(128), nullable=True))
        batch.add_column(sa.Column("redeemed_at", sa.BigInteger, nullable=True))
    op.create_index("ix_issued_tokens_task", "issued_tokens", ["task"])
    op.create_index("ix_issued_tokens_actor", "issued_tokens", ["actor"])
    op.create_table(
        "audit_log",
        sa.Column("chain", sa.SmallInteger, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("actors", sa.Text, nullable=True),
        sa.Column("task", sa.String(128), nullable=True),
        sa.Column("jti", sa.String(64), nullable=True),
        sa.Column("parent_jti", sa.String(64), nullable=True),
        sa.Column("jkt", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", sa.Text, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])
    op.create_index("ix_audit_log_task", "audit_log", ["task"])
    heads = op.create_table(
        "audit_heads",
        sa.Column("chain", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(heads, [{"chain": c, "seq": 0, "hash": "0" * 64} for c in range(AUDIT_CHAINS)])


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_table("audit_log")
    op.drop_index("ix_issued_tokens_actor", "issued_tokens")
    op.drop_index("ix_issued_tokens_task", "issued_tokens")
    with op.batch_alter_table("issued_tokens") as batch:
        for column in ("redeemed_at", "actor", "task", "kind"):
            batch.drop_column(column)
