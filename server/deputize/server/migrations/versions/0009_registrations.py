"""Dynamic client registration (RFC 7591/7592): the registration access token of each client
that registered itself, its metadata as registered, and when it was first used at ``/token``.

The client itself lives in ``clients`` like any runtime client, so client lookup is unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_registrations_created_at", "registrations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_registrations_created_at", "registrations")
    op.drop_table("registrations")
