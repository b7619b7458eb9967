"""Token status list: each ledger row's index in the status list, and the index allocator.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_tokens") as batch:
        batch.add_column(sa.Column("status_idx", sa.BigInteger, nullable=True))
    # Only revoked rows are indexed: building a list reads those, minting never touches it.
    op.create_index(
        "ix_issued_tokens_revoked_status",
        "issued_tokens",
        ["status_idx"],
        sqlite_where=sa.text("revoked_at IS NOT NULL"),
        postgresql_where=sa.text("revoked_at IS NOT NULL"),
    )
    allocator = op.create_table(
        "status_list_allocator",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("next_idx", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(allocator, [{"name": "tokens", "next_idx": 0}])


def downgrade() -> None:
    op.drop_table("status_list_allocator")
    op.drop_index("ix_issued_tokens_revoked_status", "issued_tokens")
    with op.batch_alter_table("issued_tokens") as batch:
        batch.drop_column("status_idx")
