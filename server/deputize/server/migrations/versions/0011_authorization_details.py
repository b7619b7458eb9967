"""RFC 9396 ``authorization_details`` at sign-in: kept with the consent, the code and the
refresh token, so every token of a sign-in carries exactly what the person allowed.

A JSON array (normalised by the delegation policy's types), NULL when the request asked for
none: rows written before this revision carry none, which is what they were issued with.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("consents", "authorization_codes", "refresh_tokens")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("authorization_details", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("authorization_details")
