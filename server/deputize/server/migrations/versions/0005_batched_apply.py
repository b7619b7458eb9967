"""PostgreSQL: deputize_apply, the one call that commits a token request's writes together.

See ``deputize/server/storage/batched.py`` for why and when it is used.  SQLite needs nothing:
it keeps the ordinary one-statement-at-a-time transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Errors raised on purpose carry SQLSTATE class DZ: the caller re-runs the request on an
# ordinary transaction, which refuses it with the right OAuth error and audit entry.
# The audit hash is the one storage/audit.py computes:
#   sha256(prev_hash || '|[' || chain || ',' || seq || ',' || tail), tail from hash_tail().
APPLY = r"""
CREATE OR REPLACE FUNCTION deputize_apply(
    replay jsonb,          -- [[key, expires_at], ...]: one-time values, each must be new
    confirm jsonb,         -- [[jti, kind, client_id, task], ...]: rows the caller did not read
    lineage_of text,       -- share-lock this token and every token above it
    held text[],           -- share-lock these tokens too
    redeem_jti text,       -- use this single-use token
    redeem_at bigint,
    new_tokens jsonb,      -- rows for issued_tokens
    audit_entries jsonb    -- audit rows without seq/prev_hash/hash, plus their hash tail
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
    e jsonb;
    current_jti text;
    parent text;
    revoked bigint;
    steps int := 0;
    head_seq bigint;
    head_hash text;
    digest text;
BEGIN
    -- RFC 9449 §11.1 and RFC 7523 §3: a proof or assertion jti is accepted once.
    IF jsonb_array_length(replay) > 0 THEN
        INSERT INTO replay_cache (key, expires_at)
        SELECT r->>0, (r->>1)::bigint FROM jsonb_array_elements(replay) AS r
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> jsonb_array_length(replay) THEN
            RAISE EXCEPTION 'a one-time value was used before' USING ERRCODE = 'DZ001';
        END IF;
    END IF;

    -- Rows taken from a token's own verified claims instead of being read: they must exist,
    -- unrevoked, and agree with those claims.  (Loops of primary-key lookups, here and below:
    -- a join's cached generic plan could scan the whole ledger.)
    FOR e IN SELECT value FROM jsonb_array_elements(confirm) LOOP
        PERFORM 1 FROM issued_tokens t
        WHERE t.jti = e->>0 AND t.kind = e->>1 AND t.client_id = e->>2
          AND t.task IS NOT DISTINCT FROM e->>3 AND t.revoked_at IS NULL;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'a presented token is not as recorded' USING ERRCODE = 'DZ005';
        END IF;
    END LOOP;

    -- A hand-off token is redeemed once, and never after its revocation.
    IF redeem_jti IS NOT NULL THEN
        UPDATE issued_tokens SET redeemed_at = redeem_at
        WHERE jti = redeem_jti AND redeemed_at IS NULL AND revoked_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
            RAISE EXCEPTION 'the single-use token was used or revoked' USING ERRCODE = 'DZ002';
        END IF;
    END IF;

    -- Tokens read under lock (actor tokens) stay unrevoked until commit.
    IF cardinality(held) > 0 THEN
        SELECT count(*) INTO n FROM (
            SELECT 1 FROM issued_tokens
            WHERE jti = ANY(held) AND revoked_at IS NULL
            FOR SHARE SKIP LOCKED
        ) AS locked;
        IF n <> cardinality(held) THEN
            RAISE EXCEPTION 'a presented token is revoked' USING ERRCODE = 'DZ003';
        END IF;
    END IF;

    -- The lineage, as tokens.hold_lineage: a revocation of any ancestor either waits for this
    -- commit (and then sees the new child) or holds the row already, and we refuse.
    current_jti := lineage_of;
    WHILE current_jti IS NOT NULL LOOP
        steps := steps + 1;
        SELECT t.parent_jti, t.revoked_at INTO parent, revoked
        FROM issued_tokens t WHERE t.jti = current_jti
        FOR SHARE SKIP LOCKED;
        IF NOT FOUND OR revoked IS NOT NULL OR steps > 64 THEN
            RAISE EXCEPTION 'the lineage is revoked' USING ERRCODE = 'DZ004';
        END IF;
        current_jti := parent;
    END LOOP;

    INSERT INTO issued_tokens
    SELECT * FROM jsonb_populate_recordset(NULL::issued_tokens, new_tokens);

    FOR e IN SELECT value FROM jsonb_array_elements(audit_entries) LOOP
        SELECT h.seq, h.hash INTO head_seq, head_hash
        FROM audit_heads h WHERE h.chain = (e->>'chain')::smallint
        FOR UPDATE;
        digest := encode(sha256(convert_to(
            head_hash || '|[' || (e->>'chain') || ',' || (head_seq + 1) || ',' || (e->>'tail'),
            'UTF8')), 'hex');
        INSERT INTO audit_log
        SELECT * FROM jsonb_populate_record(NULL::audit_log, e || jsonb_build_object(
            'seq', head_seq + 1, 'prev_hash', head_hash, 'hash', digest));
        UPDATE audit_heads SET seq = head_seq + 1, hash = digest
        WHERE chain = (e->>'chain')::smallint;
    END LOOP;
END
$fn$
-- Plan each statement for the ledger as it is now: a generic plan cached while the ledger was
-- small would keep scanning it whole as it grows (until an ANALYZE invalidates the plan).
SET plan_cache_mode = force_custom_plan
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS "
            "deputize_apply(jsonb, jsonb, text, text[], text, bigint, jsonb, jsonb)"
        )
