"""Alembic environment: Deputize runs migrations itself, on a connection it passes in."""

from __future__ import annotations

from alembic import context

from deputize.server.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
