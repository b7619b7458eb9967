"""Pushed authorization requests (RFC 9126): one table of seconds-long, single-use requests.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pushed_requests",
        sa.Column("request_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_pushed_requests_expires_at", "pushed_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_pushed_requests_expires_at", "pushed_requests")
    op.drop_table("pushed_requests")
