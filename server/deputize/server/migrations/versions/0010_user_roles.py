"""People's roles in the user store (the delegation policy's ``roles``, docs/policy.md).

A space-separated list in ``users.roles``: a person has a handful of roles, read with the user
on every issuance for them, and never queried by role.  Existing users get none (NULL), which
the policy reads as no role at all: nothing is granted until an operator assigns roles.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("roles", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("roles")
