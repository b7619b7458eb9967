"""Approval requests (OpenID CIBA, poll mode): a supervised action waiting for its person.

``auth_req_hash`` is the SHA-256 of the ``auth_req_id`` the agent polls with (never stored
plain); ``id`` is a short public name for pages and ``deputize approvals``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backchannel_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("auth_req_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("actors", sa.Text(), nullable=False),
        sa.Column("parent_jti", sa.String(64), nullable=False),
        sa.Column("jkt", sa.String(64), nullable=False),
        sa.Column("task", sa.String(128), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("authorization_details", sa.Text(), nullable=False),
        sa.Column("binding_message", sa.String(256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_backchannel_requests_sub", "backchannel_requests", ["sub"])
    op.create_index("ix_backchannel_requests_expires_at", "backchannel_requests", ["expires_at"])


def downgrade() -> None:
    op.drop_table("backchannel_requests")
