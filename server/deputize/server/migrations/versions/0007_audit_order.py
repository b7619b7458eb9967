"""Audit entries in one order across the chains, with sub-second time and a key's own field.

``id`` numbers every entry as it is written, so ``deputize audit`` lists the 16 chains'
entries as they happened; ``at_us`` holds the time in microseconds; ``kid`` names a signing
key (a key rotation used to put it in ``jkt``, which names a holder's DPoP key).

Existing entries are numbered in the order ``deputize audit`` listed them before (time, chain,
position in the chain) and keep ``at_us`` and ``kid`` empty: their hashes cover exactly what
they did, so a trail written before this migration still verifies (``storage/audit.py``).

On PostgreSQL a sequence numbers new entries (the column's default), and
``deputize_apply_batch`` — whose ``INSERT ... SELECT a.*`` would otherwise write an empty
``id`` — draws from the same sequence.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import runpy
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# UPDATE ... FROM: PostgreSQL, and SQLite since 3.33.
_NUMBER_EXISTING = """
UPDATE audit_log SET id = numbered.n
FROM (SELECT chain, seq, row_number() OVER (ORDER BY at, chain, seq) AS n FROM audit_log)
     AS numbered
WHERE audit_log.chain = numbered.chain AND audit_log.seq = numbered.seq
"""

# The one line of 0006's function that builds a stored entry, and its replacement.
_ENTRY_0006 = """'chain', chain_no, 'seq', head_seq, 'prev_hash', head_hash, 'hash', digest));"""
_ENTRY_0007 = """'chain', chain_no, 'seq', head_seq, 'prev_hash', head_hash, 'hash', digest,
                'id', nextval('audit_log_id_seq')));"""


def _apply_batch_0006() -> str:
    previous = runpy.run_path(str(Path(__file__).with_name("0006_group_commit.py")))
    text: str = previous["APPLY_BATCH"]
    return text


def apply_batch() -> str:
    """0006's ``deputize_apply_batch``, numbering the entries it writes."""
    text = _apply_batch_0006()
    if text.count(_ENTRY_0006) != 1:
        raise RuntimeError("0006's deputize_apply_batch is not the one 0007 amends")
    return text.replace(_ENTRY_0006, _ENTRY_0007)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("id", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("at_us", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("kid", sa.String(64), nullable=True))
    op.execute(_NUMBER_EXISTING)
    if postgresql:
        op.execute("CREATE SEQUENCE audit_log_id_seq OWNED BY audit_log.id")
        # After the numbered entries (an empty trail leaves it at 1).
        op.execute("SELECT setval('audit_log_id_seq', max(id)) FROM audit_log")
        op.execute("ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id_seq')")
        op.execute(apply_batch())
    with op.batch_alter_table("audit_log") as batch:  # SQLite: copies the table once
        batch.alter_column("id", existing_type=sa.BigInteger, nullable=False)
    op.create_index("ix_audit_log_id", "audit_log", ["id"], unique=True)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(_apply_batch_0006())
    op.drop_index("ix_audit_log_id", "audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("kid")
        batch.drop_column("at_us")
        batch.drop_column("id")  # on PostgreSQL, drops its sequence too (OWNED BY)
