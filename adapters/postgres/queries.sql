-- Every query of the PostgreSQL adapters, one named block each (loaded by _db.load_queries).
-- Record columns are always in the order of actorflow.adapters._sql.RECORD_COLUMNS.

-- name: insert_record
-- A new run with its snapshot and event (or outbox row); returns 1 when inserted. The
-- unique partial index refuses a second unfinished run atomically; NOT EXISTS also
-- refuses a (finished) run while another run of the foreign id is unfinished.
WITH v (workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, version,
        run_state_reason, status_description, trace_origin) AS (
    VALUES (%s::text, %s::text, %s::text, %s::smallint, %s::integer, %s::bytea, %s::timestamptz, %s::timestamptz,
            %s::bigint, %s::text, %s::text, %s::text)
), ins AS (
    INSERT INTO workflow_records (workflow_name, foreign_id, run_id, run_state, status, object, created_at,
                                  updated_at, version, run_state_reason, status_description, trace_origin)
    SELECT * FROM v
    WHERE NOT EXISTS (
        SELECT 1 FROM workflow_records r, v
        WHERE r.workflow_name = v.workflow_name AND r.foreign_id = v.foreign_id AND r.run_state IN (1, 2, 3)
    )
    ON CONFLICT DO NOTHING
    RETURNING *
), snap AS (
    INSERT INTO workflow_record_snapshots (workflow_name, foreign_id, run_id, run_state, status, object, created_at,
                                           updated_at, version, run_state_reason, status_description, trace_origin)
    SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at,
           updated_at, version, run_state_reason, status_description, trace_origin FROM ins
), {publish}
SELECT count(*) FROM ins

-- name: update_record
-- The next version of a run, only over the version the writer read; returns 1 row when stored.
WITH upd AS (
    UPDATE workflow_records
    SET run_state = %s, status = %s, object = %s, updated_at = %s, version = %s,
        run_state_reason = %s, status_description = %s, trace_origin = %s
    WHERE run_id = %s AND version = %s
    RETURNING *
), snap AS (
    INSERT INTO workflow_record_snapshots (workflow_name, foreign_id, run_id, run_state, status, object, created_at,
                                           updated_at, version, run_state_reason, status_description, trace_origin)
    SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at,
           updated_at, version, run_state_reason, status_description, trace_origin FROM upd
), {forget}{publish}
SELECT count(*) FROM upd

-- name: forget_errors
-- (spliced into update_record when the engine asks) the run's step error counts, stale once
-- it has a new version: the engine counts per visit (process@version). One index probe.
clr AS (
    DELETE FROM workflow_error_counts WHERE run_id = (SELECT run_id FROM upd)
)

-- name: publish_event
-- (spliced into insert_record/update_record) the event, in the record's transaction.
pub AS (
    INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)
    SELECT %s, %s, %s, %s, %s, %s FROM {source}
)

-- name: publish_outbox
-- (spliced into insert_record/update_record) the outbox row, in the record's transaction.
pub AS (
    INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at)
    SELECT %s, %s, %s, %s, %s, %s FROM {source}
)

-- name: run_exists
SELECT 1 FROM workflow_records WHERE run_id = %s

-- name: lookup
SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, version,
       run_state_reason, status_description, trace_origin
FROM workflow_records WHERE run_id = %s

-- name: lookup_many
SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, version,
       run_state_reason, status_description, trace_origin
FROM workflow_records WHERE run_id = ANY(%s)

-- name: latest
SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, version,
       run_state_reason, status_description, trace_origin
FROM workflow_records WHERE workflow_name = %s AND foreign_id = %s
ORDER BY created_at DESC, created_seq DESC LIMIT 1

-- name: list_records
-- {where} and {direction} are built by the adapter from fixed fragments, never from input.
SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, version,
       run_state_reason, status_description, trace_origin
FROM workflow_records WHERE {where}
ORDER BY created_at {direction}, created_seq {direction} LIMIT %s OFFSET %s

-- name: snapshots
SELECT workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, version,
       run_state_reason, status_description, trace_origin
FROM workflow_record_snapshots WHERE run_id = %s ORDER BY version

-- name: list_outbox
SELECT id, workflow_name, run_id, type, headers, created_at
FROM workflow_outbox WHERE workflow_name = %s ORDER BY seq LIMIT %s

-- name: delete_outbox
DELETE FROM workflow_outbox WHERE id = ANY(%s)

-- name: add_error
INSERT INTO workflow_error_counts (process, run_id, count) VALUES (%s, %s, 1)
ON CONFLICT (process, run_id) DO UPDATE SET count = workflow_error_counts.count + 1
RETURNING count

-- name: clear_errors
DELETE FROM workflow_error_counts WHERE process = %s AND run_id = %s

-- name: begin_batch
INSERT INTO workflow_in_flight (process, run_ids) VALUES (%s, %s)
ON CONFLICT (process) DO UPDATE SET run_ids = excluded.run_ids

-- name: unfinished_batch
SELECT run_ids FROM workflow_in_flight WHERE process = %s

-- name: end_batches
DELETE FROM workflow_in_flight WHERE process = %s

-- name: insert_events
INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash) VALUES (%s, %s, %s, %s, %s, %s)

-- name: read_events
-- Only below the oldest running transaction (the xmin cut): everything there is committed
-- or gone. The xid goes out as text under another name: ORDER BY must sort the xid8
-- column, and an output column named "xid" would make it sort text ("100000" < "99999").
-- After the events comes at most one marker row (run_id NULL): the first committed event
-- of the topic beyond the cut, if there is one, i.e. an older transaction that is still
-- open holds it back (its end may notify nobody, so the reader looks again soon). Not
-- filtered by shard: a shard with nothing of its own there would scan the whole held-back
-- region on every read; another shard's event only costs a cheap early re-poll.
WITH cut AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT r.id, r.cursor_xid, r.run_id, r.type, r.headers, r.created_at
FROM (
    (SELECT e.xid AS sort_xid, e.id, e.xid::text AS cursor_xid, e.run_id, e.type, e.headers, e.created_at
     FROM workflow_events e
     WHERE e.topic = %(topic)s
       AND (e.xid, e.id) > (%(xid)s::xid8, %(id)s::bigint)
       AND e.xid < (SELECT xmin FROM cut)
       AND (%(count)s <= 1 OR e.shard_hash %% %(count)s = %(shard)s)
     ORDER BY e.xid, e.id
     LIMIT %(limit)s)
    UNION ALL
    -- Its index scan starts at the cut (or the cursor, if later): never across a backlog.
    (SELECT e.xid, e.id, e.xid::text, NULL, NULL, NULL, NULL
     FROM workflow_events e
     WHERE e.topic = %(topic)s
       AND e.xid >= greatest((SELECT xmin FROM cut), %(xid)s::xid8)
       AND NOT (e.xid = %(xid)s::xid8 AND e.id <= %(id)s::bigint)
     ORDER BY e.xid, e.id
     LIMIT 1)
) r
ORDER BY r.sort_xid, r.id

-- name: oldest_transaction
-- The session whose open transaction is the oldest on the cluster (what holds the xmin cut).
SELECT pid, state, xact_start, query_start, application_name, datname
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
ORDER BY age(backend_xid) DESC
LIMIT 1

-- name: read_cursor
SELECT xid::text AS cursor_xid, id FROM workflow_cursors WHERE topic = %s AND name = %s

-- name: head_cursor
-- Where a stream-from-latest receiver starts: after every event committed now, including
-- those above the xmin cut (events of transactions still open now may be skipped: they
-- were sent before the receiver was made). (max xid, max id) is after every such row.
SELECT coalesce(max(e.xid)::text, '0') AS cursor_xid, coalesce(max(e.id), 0) AS cursor_id
FROM workflow_events e
WHERE e.topic = %s

-- name: save_cursor
INSERT INTO workflow_cursors (topic, name, xid, id) VALUES (%s, %s, %s::xid8, %s::bigint)
ON CONFLICT (topic, name) DO UPDATE SET xid = excluded.xid, id = excluded.id
WHERE (workflow_cursors.xid, workflow_cursors.id) < (excluded.xid, excluded.id)

-- name: delete_old_events
-- At most a batch of the events created before a time (oldest first); nodes cleaning up
-- at once skip each other's rows instead of waiting on them.
DELETE FROM workflow_events WHERE id IN (
    SELECT id FROM workflow_events WHERE created_at < %s ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
)

-- name: create_timeout
INSERT INTO workflow_timeouts (workflow_name, foreign_id, run_id, status, expire_at, created_at)
VALUES (%s, %s, %s, %s, %s, %s) RETURNING id

-- name: complete_timeout
UPDATE workflow_timeouts SET completed = true WHERE id = %s

-- name: cancel_timeout
DELETE FROM workflow_timeouts WHERE id = %s

-- name: list_timeouts
SELECT id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at
FROM workflow_timeouts WHERE workflow_name = %s AND NOT completed ORDER BY id

-- name: list_valid_timeouts
SELECT id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at
FROM workflow_timeouts WHERE workflow_name = %s AND status = %s AND NOT completed AND expire_at <= %s ORDER BY id
