-- The SQLite adapters' queries: one named block each, a one-line description under the
-- name (the format of adapters/_sql/queries.py, shared with the PostgreSQL adapters).
-- {record_columns} and {record_placeholders} are filled in when the file is loaded
-- (adapters/_sql's RECORD_COLUMNS order); {where} and {direction} when the query runs.
-- Table and index names are the PostgreSQL adapters' (migration 0004).

-- migrations_table_exists --
-- Whether this file records its schema versions in actorflow_migrations yet
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'actorflow_migrations';

-- create_migrations_table --
-- The table that records which schema versions were applied (applied_at: microseconds since the epoch)
CREATE TABLE IF NOT EXISTS actorflow_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL DEFAULT (CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000)
);

-- select_migrations --
-- The schema versions applied to this file
SELECT version FROM actorflow_migrations ORDER BY version;

-- insert_migration --
-- Record that a schema version was applied (now)
INSERT INTO actorflow_migrations (version, name) VALUES (?, ?);

-- legacy_migrations_table_exists --
-- Whether the file still has the bookkeeping table of releases before actorflow_migrations
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations';

-- adopt_legacy_migrations --
-- Carry the versions an older release recorded in schema_migrations over, with their times
INSERT OR IGNORE INTO actorflow_migrations (version, name, applied_at)
SELECT version, name, applied_at FROM schema_migrations;

-- drop_legacy_migrations --
-- Drop the older release's bookkeeping once its rows are carried over
DROP TABLE schema_migrations;

-- insert_record --
-- Create a run at version 1 (the partial unique index refuses a second unfinished run)
INSERT INTO workflow_records ({record_columns}) VALUES ({record_placeholders});

-- update_record --
-- Store the next version of a run if the stored one is the version before (identity columns never change)
UPDATE workflow_records
SET run_state = ?, status = ?, object = ?, updated_at = ?, version = ?,
    run_state_reason = ?, status_description = ?, trace_origin = ?
WHERE run_id = ? AND version = ?;

-- unfinished_run --
-- The run of a foreign id that is Initiated, Running or Paused, if any
SELECT run_id FROM workflow_records
WHERE workflow_name = ? AND foreign_id = ? AND run_state IN (1, 2, 3)
LIMIT 1;

-- run_exists --
-- Whether a run id is stored
SELECT count(*) FROM workflow_records WHERE run_id = ?;

-- insert_snapshot --
-- Keep a stored version of a run
INSERT INTO workflow_record_snapshots ({record_columns}) VALUES ({record_placeholders});

-- scrub_snapshots --
-- A run's data was deleted: its earlier versions keep the replacement object, not the original
UPDATE workflow_record_snapshots SET object = ? WHERE run_id = ? AND version < ?;

-- insert_outbox_event --
-- Write a run's event beside it, for the outbox relay
INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at) VALUES (?, ?, ?, ?, ?, ?);

-- insert_event --
-- Append an event to the log (straight from the record store, or from a sender)
INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash) VALUES (?, ?, ?, ?, ?, ?);

-- update_records --
-- Store the next versions of many runs (rows of v), all of them or none: each run must be at the version before
-- {values} is spliced in: one (?, ...) row of the record columns per record, padded to its size
-- with rows of NULLs. One statement for the lot instead of one per record: sqlite3 lets go of
-- the GIL around every statement it steps. All or none: no run is updated unless every run of
-- v is at the version before with the same identity (workflow, foreign id, creation time: the
-- snapshots below copy the stored row), and none finished is made unfinished (the only update
-- the one-unfinished-run index can refuse). The rows then come out exactly as storing the
-- records one by one would leave them.
WITH v ({record_columns}) AS (VALUES {values})
UPDATE workflow_records
SET run_state = v.run_state, status = v.status, object = v.object, updated_at = v.updated_at, version = v.version,
    run_state_reason = v.run_state_reason, status_description = v.status_description, trace_origin = v.trace_origin
FROM v
WHERE workflow_records.run_id = v.run_id AND workflow_records.version = v.version - 1
  AND (SELECT count(*) FROM v JOIN workflow_records r ON r.run_id = v.run_id AND r.version = v.version - 1
       WHERE r.workflow_name = v.workflow_name AND r.foreign_id = v.foreign_id AND r.created_at = v.created_at
         AND (r.run_state IN (1, 2, 3) OR v.run_state NOT IN (1, 2, 3)))
    = (SELECT count(*) FROM v WHERE run_id IS NOT NULL);

-- insert_snapshots --
-- Keep the stored versions of many runs just updated (their ids given as one JSON array)
INSERT INTO workflow_record_snapshots ({record_columns})
SELECT {record_columns} FROM workflow_records WHERE run_id IN (SELECT value FROM json_each(?));

-- insert_record_events --
-- Append the events of many runs just stored, in order (one JSON array of [run id, topic, shard hash] each)
-- {headers} is spliced in: the json_object() arguments of the event's headers, key by key.
WITH v AS (
    SELECT e.key AS ord, json_extract(e.value, '$[1]') AS topic, json_extract(e.value, '$[2]') AS shard_hash,
           r.workflow_name, r.foreign_id, r.run_id, r.run_state, r.status, r.updated_at, r.version
    FROM json_each(?) e JOIN workflow_records r ON r.run_id = json_extract(e.value, '$[0]')
)
INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)
SELECT topic, run_id, status, json_object({headers}), updated_at, shard_hash FROM v ORDER BY ord;

-- clear_runs_errors --
-- Forget every step error of many runs (their ids given as one JSON array)
DELETE FROM workflow_error_counts WHERE run_id IN (SELECT value FROM json_each(?));

-- lookup_record --
-- The current version of a run
SELECT {record_columns} FROM workflow_records WHERE run_id = ?;

-- lookup_records --
-- The current versions of many runs (their ids given as one JSON array)
SELECT {record_columns} FROM workflow_records WHERE run_id IN (SELECT value FROM json_each(?));

-- latest_record --
-- The most recently created run of a foreign id
SELECT {record_columns} FROM workflow_records
WHERE workflow_name = ? AND foreign_id = ?
ORDER BY created_at DESC, id DESC
LIMIT 1;

-- list_records --
-- A page of runs in creation order, filtered
SELECT {record_columns} FROM workflow_records
WHERE {where}
ORDER BY created_at {direction}, id {direction}
LIMIT ? OFFSET ?;

-- page_records --
-- A page of runs after a cursor (created_at, id), filtered
SELECT {record_columns}, id FROM workflow_records
WHERE {where}
ORDER BY created_at {direction}, id {direction}
LIMIT ?;

-- count_runs --
-- The number of matching runs per workflow, status and run state
SELECT workflow_name, status, max(status_description), run_state, count(*)
FROM workflow_records WHERE {where}
GROUP BY workflow_name, status, run_state ORDER BY workflow_name, status, run_state;

-- carries_events_of --
-- Whether this file's event log is used for a workflow (its cursors, or events of given topics)
SELECT EXISTS (SELECT 1 FROM workflow_cursors WHERE substr(topic, 1, ?) = ?)
    OR EXISTS (SELECT 1 FROM workflow_events WHERE topic IN (SELECT value FROM json_each(?)));

-- select_snapshots --
-- Every stored version of a run, oldest first
SELECT {record_columns} FROM workflow_record_snapshots WHERE run_id = ? ORDER BY version;

-- list_outbox_events --
-- A workflow's outbox events, oldest first
SELECT id, workflow_name, run_id, type, headers, created_at FROM workflow_outbox
WHERE workflow_name = ?
ORDER BY seq
LIMIT ?;

-- has_outbox_events --
-- Whether a workflow has outbox events waiting
SELECT EXISTS (SELECT 1 FROM workflow_outbox WHERE workflow_name = ?);

-- delete_outbox_event --
-- Remove a relayed outbox event
DELETE FROM workflow_outbox WHERE id = ?;

-- add_error --
-- Count one more step error of (process, run) and return the count
INSERT INTO workflow_error_counts (process, run_id, count) VALUES (?, ?, 1)
ON CONFLICT (process, run_id) DO UPDATE SET count = count + 1
RETURNING count;

-- clear_errors --
-- Forget the step errors of (process, run)
DELETE FROM workflow_error_counts WHERE process = ? AND run_id = ?;

-- clear_run_errors --
-- Forget every step error of a run (a new version of it was stored: all its counts are stale)
DELETE FROM workflow_error_counts WHERE run_id = ?;

-- begin_batch --
-- Note the runs a consumer is about to handle (JSON list)
INSERT INTO workflow_in_flight (process, run_ids) VALUES (?, ?)
ON CONFLICT (process) DO UPDATE SET run_ids = excluded.run_ids;

-- unfinished_batch --
-- The runs a consumer noted and did not finish
SELECT run_ids FROM workflow_in_flight WHERE process = ?;

-- end_batches --
-- A consumer stopped cleanly: nothing of it is in flight
DELETE FROM workflow_in_flight WHERE process = ?;

-- start_cursor_at_head --
-- Give a new receiver name a cursor at the topic's last event (stream_from_latest)
INSERT OR IGNORE INTO workflow_cursors (topic, name, position)
SELECT ?, ?, coalesce(max(id), 0) FROM workflow_events WHERE topic = ?;

-- select_cursor --
-- The last acknowledged event id of a receiver name
SELECT position FROM workflow_cursors WHERE topic = ? AND name = ?;

-- ack_cursor --
-- Move a receiver's cursor forward (never back: acks are cumulative)
INSERT INTO workflow_cursors (topic, name, position) VALUES (?, ?, ?)
ON CONFLICT (topic, name) DO UPDATE SET position = max(position, excluded.position);

-- receive_events --
-- The next events of a topic after a position
SELECT id, run_id, type, headers, created_at FROM workflow_events
WHERE topic = ? AND id > ?
ORDER BY id
LIMIT ?;

-- receive_shard_events --
-- The next events of one shard of a topic after a position
SELECT id, run_id, type, headers, created_at FROM workflow_events
WHERE topic = ? AND id > ? AND shard_hash % ? = ?
ORDER BY id
LIMIT ?;

-- topic_head --
-- The id of a topic's last event (0 when it has none)
SELECT coalesce(max(id), 0) FROM workflow_events WHERE topic = ?;

-- delete_old_events --
-- Delete a batch of the events created before a time, oldest (by id: write order) first.
-- Scanning by id stops at the batch's last match: the old events are the first ones.
DELETE FROM workflow_events WHERE id IN (SELECT id FROM workflow_events WHERE created_at < ? ORDER BY id LIMIT ?);

-- insert_timeout --
-- Store a timeout
INSERT INTO workflow_timeouts
    (workflow_name, foreign_id, run_id, status, completed, expire_at, created_at, timeout_index, record_version)
VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?);

-- complete_timeout --
-- Mark a timeout done
UPDATE workflow_timeouts SET completed = 1 WHERE id = ?;

-- delete_timeout --
-- Remove a timeout
DELETE FROM workflow_timeouts WHERE id = ?;

-- list_timeouts --
-- A workflow's uncompleted timeouts, by id
SELECT id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at, timeout_index, record_version
FROM workflow_timeouts
WHERE workflow_name = ? AND completed = 0
ORDER BY id;

-- list_valid_timeouts --
-- A workflow's uncompleted timeouts of a status that expired at or before a time, by id
SELECT id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at, timeout_index, record_version
FROM workflow_timeouts
WHERE workflow_name = ? AND status = ? AND completed = 0 AND expire_at <= ?
ORDER BY id;

-- acquire_role --
-- Take or renew a role for a node (timed by SQLite's clock, in microseconds); the term grows with each new holder
INSERT INTO workflow_leases (role, node_id, term, expires_at)
VALUES (:role, :node, 1, CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER) + :ttl)
ON CONFLICT (role) DO UPDATE
SET node_id = excluded.node_id,
    term = workflow_leases.term + (workflow_leases.node_id <> excluded.node_id),
    expires_at = excluded.expires_at
WHERE workflow_leases.node_id = excluded.node_id
   OR workflow_leases.expires_at <= CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
RETURNING term;

-- release_role --
-- Give a role up at once if the node holds it (the row and its term stay for the next holder)
UPDATE workflow_leases SET expires_at = CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
WHERE role = ? AND node_id = ? AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER);

-- role_holders --
-- The roles held now, by whom and under which term
SELECT role, node_id, term FROM workflow_leases
WHERE expires_at > CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)
ORDER BY role;

-- check_fence --
-- A node's lease on a role, if it is still the role's current and live one (the write lock keeps it so until commit)
SELECT 1 FROM workflow_leases
WHERE role = ? AND node_id = ? AND term = ?
  AND expires_at > CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER);

-- join_node --
-- Register a node as live for a ttl in microseconds (a node still live keeps its start time)
INSERT INTO workflow_nodes (node_id, started_at, heartbeat_at, expires_at)
VALUES (:node, :now, :now, :now + :ttl)
ON CONFLICT (node_id) DO UPDATE
SET heartbeat_at = excluded.heartbeat_at,
    expires_at = excluded.expires_at,
    started_at = CASE WHEN workflow_nodes.expires_at > :now THEN workflow_nodes.started_at ELSE excluded.started_at END;

-- clear_node_roles --
-- Forget the roles a node said it may work (it says them again when it joins)
DELETE FROM workflow_node_roles WHERE node_id = ?;

-- add_node_role --
-- A role a node may work
INSERT OR IGNORE INTO workflow_node_roles (node_id, role) VALUES (?, ?);

-- forget_dead_nodes --
-- Drop the nodes away for an hour (3.6e9 microseconds), with the roles they said they may work
DELETE FROM workflow_node_roles WHERE node_id IN (
    SELECT node_id FROM workflow_nodes WHERE expires_at < :now - 3600000000
);

-- forget_dead_node_rows --
-- Drop the rows of the nodes away for an hour (after their roles)
DELETE FROM workflow_nodes WHERE expires_at < :now - 3600000000;

-- clock --
-- SQLite's clock, in microseconds since the epoch (the host's: every process on it shares it)
SELECT CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER);

-- renew_node --
-- A live node's heartbeat: it stays live for a ttl more
UPDATE workflow_nodes SET heartbeat_at = :now, expires_at = :now + :ttl
WHERE node_id = :node AND expires_at > :now;

-- renew_node_leases --
-- Every live lease of a node, renewed for a ttl more
UPDATE workflow_leases SET expires_at = :now + :ttl
WHERE node_id = :node AND expires_at > :now
RETURNING role, term;

-- role_candidates --
-- Each role a live node may work, with that node
SELECT r.role, r.node_id FROM workflow_node_roles r JOIN workflow_nodes n ON n.node_id = r.node_id
WHERE n.expires_at > :now;

-- live_holders --
-- Each lease held now, by whom
SELECT role, node_id FROM workflow_leases WHERE expires_at > :now;

-- release_node_leases --
-- A node stops: its leases are released at once
UPDATE workflow_leases SET expires_at = :now WHERE node_id = :node AND expires_at > :now;

-- drop_node --
-- A node stops: it is no longer live
DELETE FROM workflow_nodes WHERE node_id = ?;

-- live_nodes --
-- The live nodes, with each role they hold now (one row per role; NULL when none)
SELECT n.node_id, n.started_at, n.heartbeat_at, l.role
FROM workflow_nodes n
LEFT JOIN workflow_leases l ON l.node_id = n.node_id AND l.expires_at > :now
WHERE n.expires_at > :now
ORDER BY n.node_id, l.role;
