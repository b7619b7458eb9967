"""PostgreSQL: deputize_apply_batch, many token requests' writes in one transaction.

Replaces 0005's ``deputize_apply`` (one request per call).  See
``deputize/server/storage/group_commit.py`` for why: one commit, one round trip and one
function call for every request that arrived while the previous batch was in flight, and the
writes done set-wise (one insert per table, one lock per audit chain head and per lineage).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# ``items`` is a JSON array with one element per request:
#   [replay, confirm, lineage_of, held, redeem_jti, redeem_at, new_tokens, audit_entries]
# with the meanings of 0005's parameters.  The checks are 0005's, made set-wise.  A failed
# check raises SQLSTATE class DZ with DETAIL = the index of the first request it fails; the
# whole batch rolls back and the caller applies the batch again without that request, which
# it decides on an ordinary transaction (the usual error and refusal audit).
#
# Audit entries of one batch all go on one chain (the first entry's), whose head is locked
# once; every hash is still sha256(prev_hash || '|[' || chain || ',' || seq || ',' || tail),
# as storage/audit.py computes it.
APPLY_BATCH = r"""
CREATE OR REPLACE FUNCTION deputize_apply_batch(items jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    bad int;
    n bigint;
    r record;
    current_jti text;
    parent text;
    revoked bigint;
    steps int;
    chain_no smallint;
    head_seq bigint;
    head_hash text;
    e jsonb;
    digest text;
    entries jsonb[] := '{}';
BEGIN
    -- RFC 9449 §11.1 and RFC 7523 §3: a proof or assertion jti is accepted once, so a value
    -- already stored, or used by an earlier request of this batch, fails its request.
    WITH wanted AS (
        SELECT (o.i - 1)::int AS item, v->>0 AS key, (v->>1)::bigint AS expires_at
        FROM jsonb_array_elements(items) WITH ORDINALITY AS o(it, i),
             jsonb_array_elements(o.it->0) AS v
    ), inserted AS (
        INSERT INTO replay_cache (key, expires_at)
        SELECT DISTINCT ON (key) key, expires_at FROM wanted ORDER BY key, item
        ON CONFLICT DO NOTHING
        RETURNING key
    )
    SELECT min(w.item) INTO bad FROM wanted w
    WHERE NOT EXISTS (SELECT 1 FROM inserted x WHERE x.key = w.key)
       OR EXISTS (SELECT 1 FROM wanted v WHERE v.key = w.key AND v.item < w.item);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'a one-time value was used before'
            USING ERRCODE = 'DZ001', DETAIL = bad;
    END IF;

    -- Rows taken from a token's own verified claims instead of being read: they must exist,
    -- unrevoked, and agree with those claims.
    SELECT min(c.item) INTO bad FROM (
        SELECT (o.i - 1)::int AS item, v
        FROM jsonb_array_elements(items) WITH ORDINALITY AS o(it, i),
             jsonb_array_elements(o.it->1) AS v
    ) AS c
    LEFT JOIN LATERAL (  -- LIMIT keeps this a primary-key lookup per row, never a join
        SELECT true AS found FROM issued_tokens t
        WHERE t.jti = c.v->>0 AND t.kind = c.v->>1 AND t.client_id = c.v->>2
          AND t.task IS NOT DISTINCT FROM c.v->>3 AND t.revoked_at IS NULL
        LIMIT 1
    ) AS x ON true
    WHERE x.found IS NULL;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'a presented token is not as recorded'
            USING ERRCODE = 'DZ005', DETAIL = bad;
    END IF;

    -- A hand-off token is redeemed once, and never after its revocation (a second redemption
    -- in the same batch finds redeemed_at set by the first).
    FOR r IN
        SELECT (o.i - 1)::int AS item, o.it->>4 AS jti, (o.it->>5)::bigint AS at
        FROM jsonb_array_elements(items) WITH ORDINALITY AS o(it, i)
        WHERE o.it->>4 IS NOT NULL ORDER BY o.i
    LOOP
        UPDATE issued_tokens SET redeemed_at = r.at
        WHERE jti = r.jti AND redeemed_at IS NULL AND revoked_at IS NULL;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n <> 1 THEN
            RAISE EXCEPTION 'the single-use token was used or revoked'
                USING ERRCODE = 'DZ002', DETAIL = r.item;
        END IF;
    END LOOP;

    -- Tokens read under lock (actor tokens) stay unrevoked until commit.
    FOR r IN
        SELECT (o.i - 1)::int AS item, h.value AS jti
        FROM jsonb_array_elements(items) WITH ORDINALITY AS o(it, i),
             jsonb_array_elements_text(o.it->3) AS h
        ORDER BY o.i
    LOOP
        PERFORM 1 FROM issued_tokens WHERE jti = r.jti AND revoked_at IS NULL
        FOR SHARE SKIP LOCKED;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'a presented token is revoked'
                USING ERRCODE = 'DZ003', DETAIL = r.item;
        END IF;
    END LOOP;

    -- Each distinct lineage once, as tokens.hold_lineage: a revocation of any ancestor either
    -- waits for this commit (and then sees the new children) or holds the row already, and
    -- the requests on it are refused.  Walked by primary key with a step guard, so a tampered
    -- ledger with a cycle fails closed.
    FOR r IN
        SELECT o.it->>2 AS jti, min(o.i - 1)::int AS item
        FROM jsonb_array_elements(items) WITH ORDINALITY AS o(it, i)
        WHERE o.it->>2 IS NOT NULL GROUP BY 1 ORDER BY 2
    LOOP
        current_jti := r.jti;
        steps := 0;
        WHILE current_jti IS NOT NULL LOOP
            steps := steps + 1;
            SELECT t.parent_jti, t.revoked_at INTO parent, revoked
            FROM issued_tokens t WHERE t.jti = current_jti
            FOR SHARE SKIP LOCKED;
            IF NOT FOUND OR revoked IS NOT NULL OR steps > 64 THEN
                RAISE EXCEPTION 'the lineage is revoked'
                    USING ERRCODE = 'DZ004', DETAIL = r.item;
            END IF;
            current_jti := parent;
        END LOOP;
    END LOOP;

    INSERT INTO issued_tokens
    SELECT t.* FROM jsonb_array_elements(items) AS it,
                    jsonb_populate_recordset(NULL::issued_tokens, it->6) AS t;

    -- One chain for the whole batch, its head locked once.
    SELECT (a->>'chain')::smallint INTO chain_no
    FROM jsonb_array_elements(items) AS it, jsonb_array_elements(it->7) AS a LIMIT 1;
    IF chain_no IS NOT NULL THEN
        SELECT h.seq, h.hash INTO head_seq, head_hash
        FROM audit_heads h WHERE h.chain = chain_no FOR UPDATE;
        FOR e IN
            SELECT a FROM jsonb_array_elements(items) WITH ORDINALITY AS o(it, i),
                          jsonb_array_elements(o.it->7) WITH ORDINALITY AS x(a, j)
            ORDER BY o.i, x.j
        LOOP
            head_seq := head_seq + 1;
            digest := encode(sha256(convert_to(
                head_hash || '|[' || chain_no || ',' || head_seq || ',' || (e->>'tail'),
                'UTF8')), 'hex');
            entries := entries || (e || jsonb_build_object(
                'chain', chain_no, 'seq', head_seq, 'prev_hash', head_hash, 'hash', digest));
            head_hash := digest;
        END LOOP;
        INSERT INTO audit_log
        SELECT a.* FROM unnest(entries) AS u(v),
                        jsonb_populate_record(NULL::audit_log, u.v) AS a;
        UPDATE audit_heads SET seq = head_seq, hash = head_hash WHERE chain = chain_no;
    END IF;
END
$fn$
-- Every table is reached by its primary key (or a conflict arbiter): rule out sequential scans
-- so the plans PL/pgSQL caches stay index lookups however small the ledger was when they were
-- made (0005 re-planned every statement on every call instead, at about 0.5 ms a call).  And
-- never JIT-compile: the planner's default guess of 100 elements per JSON array makes these
-- statements look costly enough for it, and compiling costs ~15 ms a call.
SET enable_seqscan = off
SET jit = off
"""

_OLD = "deputize_apply(jsonb, jsonb, text, text[], text, bigint, jsonb, jsonb)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY_BATCH)
        op.execute(f"DROP FUNCTION IF EXISTS {_OLD}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        previous = runpy.run_path(str(Path(__file__).with_name("0005_batched_apply.py")))
        op.execute(previous["APPLY"])
        op.execute("DROP FUNCTION IF EXISTS deputize_apply_batch(jsonb)")
