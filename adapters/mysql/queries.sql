-- The MySQL/MariaDB adapters' queries: one named block each, a one-line description under
-- the name (the format of adapters/_sql/queries.py, shared with the other SQL adapters).
-- Full-line comments are for people: the loader drops them. PyMySQL reads every '%' of a
-- query as a placeholder, so a literal one is written '%%'.
-- {record_columns} and {record_placeholders} are filled in when the file is loaded
-- (adapters/_sql's RECORD_COLUMNS order); {where}, {direction} and {ids} when a query runs.

-- create_migrations_table --
-- The table that records which schema versions were applied
CREATE TABLE IF NOT EXISTS actorflow_migrations (
    version INTEGER NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4

-- select_migrations --
-- The schema versions applied to this database
SELECT version FROM actorflow_migrations ORDER BY version

-- insert_migration --
-- Record that a schema version was applied (now)
INSERT INTO actorflow_migrations (version, name) VALUES (%s, %s)

-- migrations_table_exists --
-- One row, true when this database has the bookkeeping table
SELECT COUNT(*) > 0 FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name = 'actorflow_migrations'

-- lock_migrations --
-- Take the database's named migration lock (a session lock: DDL commits on its own); 1 when taken
SELECT GET_LOCK(%s, %s)

-- unlock_migrations --
-- Release the named migration lock
SELECT RELEASE_LOCK(%s)

-- insert_record --
-- A new run (version 1); the unique indexes refuse a known run id and a second unfinished run
INSERT INTO workflow_records ({record_columns}) VALUES ({record_placeholders})

-- unfinished_run --
-- The unfinished run of a foreign id, if there is one
SELECT run_id FROM workflow_records WHERE workflow_name = %s AND unfinished_foreign_id = %s

-- run_exists --
-- Whether a run id is stored (a row when it is)
SELECT 1 FROM workflow_records WHERE run_id = %s

-- update_record --
-- The next version of a run, only over the version the writer read; 1 row when stored
UPDATE workflow_records
SET run_state = %s, status = %s, object = %s, updated_at = %s, version = %s,
    run_state_reason = %s, status_description = %s, trace_origin = %s
WHERE run_id = %s AND version = %s

-- insert_snapshot --
-- The stored version of a run, kept (rows of many records go in one statement)
INSERT INTO workflow_record_snapshots ({record_columns}) VALUES ({record_placeholders})

-- clear_run_errors --
-- Forget the step error counts of a run (it has a new version: they are stale)
DELETE FROM workflow_error_counts WHERE run_id = %s

-- scrub_snapshots --
-- A Data Deleted version's object in every earlier snapshot of the run
UPDATE workflow_record_snapshots SET object = %s WHERE run_id = %s AND version < %s

-- insert_outbox --
-- An outbox row, in the record's transaction
INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at) VALUES (%s, %s, %s, %s, %s, %s)

-- reserve_events --
-- Reserve a number of event sequence numbers; the last one is the statement's insert id.
-- The row stays exclusively locked until the transaction ends: taken as the last statement
-- before the events are inserted and the transaction commits, it orders the commits of
-- every writer of events by the numbers they reserved (see streamer.py).
UPDATE workflow_event_sequence SET value = LAST_INSERT_ID(value + %s) WHERE id = 1

-- insert_event --
-- An event under a reserved sequence number (rows of many events go in one statement)
INSERT INTO workflow_events (seq, topic, run_id, type, headers, created_at, shard_hash)
VALUES (%s, %s, %s, %s, %s, %s, %s)

-- lookup --
-- The current version of a run
SELECT {record_columns} FROM workflow_records WHERE run_id = %s

-- lookup_many --
-- The current versions of many runs ({ids}: one placeholder per id)
SELECT {record_columns} FROM workflow_records WHERE run_id IN ({ids})

-- latest --
-- The most recently created run of a foreign id
SELECT {record_columns} FROM workflow_records WHERE workflow_name = %s AND foreign_id = %s
ORDER BY created_at DESC, created_seq DESC LIMIT 1

-- list_records --
-- A page of runs in creation order, filtered
-- {where} and {direction} are built by the adapter from fixed fragments, never from input.
SELECT {record_columns} FROM workflow_records WHERE {where}
ORDER BY created_at {direction}, created_seq {direction} LIMIT %s OFFSET %s

-- page_records --
-- A page of runs after a cursor (created_at, created_seq), filtered
-- {where} and {direction} are built by the adapter from fixed fragments, never from input.
SELECT {record_columns}, created_seq FROM workflow_records WHERE {where}
ORDER BY created_at {direction}, created_seq {direction} LIMIT %s

-- count_runs --
-- The number of matching runs per workflow, status and run state
SELECT workflow_name, status, MAX(status_description), run_state, COUNT(*)
FROM workflow_records WHERE {where}
GROUP BY workflow_name, status, run_state ORDER BY workflow_name, status, run_state

-- cursors_of_workflow --
-- Whether a workflow's consumers keep cursors in this database
SELECT EXISTS (SELECT 1 FROM workflow_cursors WHERE SUBSTR(topic, 1, %s) = %s)

-- events_of_topics --
-- Whether the event log holds events of any of some topics ({ids}: one placeholder per topic)
SELECT EXISTS (SELECT 1 FROM workflow_events WHERE topic IN ({ids}))

-- snapshots --
-- Every stored version of a run, oldest first
SELECT {record_columns} FROM workflow_record_snapshots WHERE run_id = %s ORDER BY version

-- list_outbox --
-- A workflow's outbox events, oldest first
SELECT id, workflow_name, run_id, type, headers, created_at
FROM workflow_outbox WHERE workflow_name = %s ORDER BY seq LIMIT %s

-- delete_outbox --
-- Remove relayed outbox events ({ids}: one placeholder per id)
DELETE FROM workflow_outbox WHERE id IN ({ids})

-- add_error --
-- Count one more step error of (process, run); the count is the insert id, 0 for the first
INSERT INTO workflow_error_counts (process, run_id, count) VALUES (%s, %s, 1)
ON DUPLICATE KEY UPDATE count = LAST_INSERT_ID(count + 1)

-- clear_errors --
-- Forget the step errors of (process, run)
DELETE FROM workflow_error_counts WHERE process = %s AND run_id = %s

-- begin_batch --
-- Note the runs a consumer is about to handle (JSON list)
INSERT INTO workflow_in_flight (process, run_ids) VALUES (%s, %s)
ON DUPLICATE KEY UPDATE run_ids = VALUES(run_ids)

-- unfinished_batch --
-- The runs a consumer noted and did not finish
SELECT run_ids FROM workflow_in_flight WHERE process = %s

-- end_batches --
-- A consumer stopped cleanly: nothing of it is in flight
DELETE FROM workflow_in_flight WHERE process = %s

-- read_events --
-- The next events of a receiver's share after its cursor, in sequence order
SELECT e.seq, e.run_id, e.type, e.headers, e.created_at
FROM workflow_events e
WHERE e.topic = %(topic)s AND e.seq > %(seq)s
  AND (%(count)s <= 1 OR e.shard_hash %% %(count)s = %(shard)s)
ORDER BY e.seq
LIMIT %(limit)s

-- read_events_along --
-- As read_events, with each event's current record (its record columns after the event's)
SELECT e.seq, e.run_id, e.type, e.headers, e.created_at,
       r.workflow_name, r.foreign_id, r.run_id, r.run_state, r.status, r.object, r.created_at, r.updated_at,
       r.version, r.run_state_reason, r.status_description, r.trace_origin
FROM workflow_events e
LEFT JOIN workflow_records r ON r.run_id = e.run_id
WHERE e.topic = %(topic)s AND e.seq > %(seq)s
  AND (%(count)s <= 1 OR e.shard_hash %% %(count)s = %(shard)s)
ORDER BY e.seq
LIMIT %(limit)s

-- read_cursor --
-- The last acknowledged seq of a receiver name
SELECT seq FROM workflow_cursors WHERE topic = %s AND name = %s

-- head_cursor --
-- Where a stream-from-latest receiver starts: after every event of the topic committed now
SELECT COALESCE(MAX(seq), 0) FROM workflow_events WHERE topic = %s

-- save_cursor --
-- Move a receiver's cursor forward (never back: acks are cumulative)
INSERT INTO workflow_cursors (topic, name, seq) VALUES (%s, %s, %s)
ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))

-- save_cursor_fenced --
-- Move a receiver's cursor forward only while a node's lease on its role is current; a row counted when it was
-- A plain read of the lease (an ack racing a hand-over by microseconds only marks as
-- done what the node committed), so the heartbeats' renewals never wait for it.
INSERT INTO workflow_cursors (topic, name, seq)
SELECT %(topic)s, %(name)s, %(seq)s FROM workflow_leases
WHERE role = %(role)s AND node_id = %(node)s AND term = %(term)s AND expires_at > NOW(6)
ON DUPLICATE KEY UPDATE seq = GREATEST(workflow_cursors.seq, VALUES(seq))

-- delete_old_events --
-- Delete at most a batch of the events created before a time, oldest first
DELETE FROM workflow_events WHERE created_at < %s ORDER BY created_at LIMIT %s

-- create_timeout --
-- Store a timeout (its id is the insert id)
INSERT INTO workflow_timeouts
    (workflow_name, foreign_id, run_id, status, expire_at, created_at, timeout_index, record_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)

-- complete_timeout --
-- Mark a timeout done (a row counted when it exists)
UPDATE workflow_timeouts SET completed = TRUE WHERE id = %s

-- cancel_timeout --
-- Remove a timeout
DELETE FROM workflow_timeouts WHERE id = %s

-- list_timeouts --
-- A workflow's uncompleted timeouts, by id
SELECT id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at, timeout_index, record_version
FROM workflow_timeouts WHERE workflow_name = %s AND NOT completed ORDER BY id

-- list_valid_timeouts --
-- A workflow's uncompleted timeouts of a status that expired at or before a time, by id
SELECT id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at, timeout_index, record_version
FROM workflow_timeouts WHERE workflow_name = %s AND NOT completed AND status = %s AND expire_at <= %s ORDER BY id

-- lock_lease --
-- A role's lease (holder, term, whether it is live), locked until the transaction ends
SELECT node_id, term, expires_at > NOW(6) FROM workflow_leases WHERE role = %s FOR UPDATE

-- insert_lease --
-- The first lease of a role (term 1), for a number of microseconds of the database clock
INSERT INTO workflow_leases (role, node_id, term, expires_at)
VALUES (%s, %s, 1, NOW(6) + INTERVAL %s MICROSECOND)

-- take_lease --
-- Give a role's lease to a node under a term, for a number of microseconds of the database clock
UPDATE workflow_leases SET node_id = %s, term = %s, expires_at = NOW(6) + INTERVAL %s MICROSECOND
WHERE role = %s

-- release_role --
-- Give a role up at once if the node holds it (the row and its term stay for the next holder)
UPDATE workflow_leases SET expires_at = NOW(6)
WHERE role = %s AND node_id = %s AND expires_at > NOW(6)

-- role_holders --
-- The roles held now, by whom and under which term
SELECT role, node_id, term FROM workflow_leases WHERE expires_at > NOW(6) ORDER BY role

-- check_fence --
-- A node's lease on a role, if it is still the role's current and live one; share-locked until the write commits
SELECT 1 FROM workflow_leases
WHERE role = %s AND node_id = %s AND term = %s AND expires_at > NOW(6)
LOCK IN SHARE MODE

-- join_node --
-- Register a node as live for a number of microseconds (a node still live keeps its start time)
-- The assignments run in order: started_at reads the old expires_at.
INSERT INTO workflow_nodes (node_id, started_at, heartbeat_at, expires_at)
VALUES (%s, NOW(6), NOW(6), NOW(6) + INTERVAL %s MICROSECOND)
ON DUPLICATE KEY UPDATE
    started_at = IF(expires_at > NOW(6), started_at, VALUES(started_at)),
    heartbeat_at = VALUES(heartbeat_at),
    expires_at = VALUES(expires_at)

-- clear_node_roles --
-- Forget the roles a node said it may work (it says them again when it joins)
DELETE FROM workflow_node_roles WHERE node_id = %s

-- add_node_role --
-- A role a node may work
INSERT IGNORE INTO workflow_node_roles (node_id, role) VALUES (%s, %s)

-- forget_dead_node_roles --
-- Drop the roles of the nodes away for an hour
DELETE r FROM workflow_node_roles r JOIN workflow_nodes n ON n.node_id = r.node_id
WHERE n.expires_at < NOW(6) - INTERVAL 1 HOUR

-- forget_dead_nodes --
-- Drop the nodes away for an hour
DELETE FROM workflow_nodes WHERE expires_at < NOW(6) - INTERVAL 1 HOUR

-- renew_node --
-- Renew a live node for a number of microseconds; a row counted when it was live
UPDATE workflow_nodes SET heartbeat_at = NOW(6), expires_at = NOW(6) + INTERVAL %s MICROSECOND
WHERE node_id = %s AND expires_at > NOW(6)

-- renew_leases --
-- Renew every live lease of a node for a number of microseconds
UPDATE workflow_leases SET expires_at = NOW(6) + INTERVAL %s MICROSECOND
WHERE node_id = %s AND expires_at > NOW(6)

-- node_leases --
-- The live leases of a node, with their terms
SELECT role, term FROM workflow_leases WHERE node_id = %s AND expires_at > NOW(6)

-- role_candidates --
-- Each role a live node may work, with that node
SELECT r.role, r.node_id FROM workflow_node_roles r JOIN workflow_nodes n ON n.node_id = r.node_id
WHERE n.expires_at > NOW(6)

-- release_node_leases --
-- A node stops: its leases are released at once
UPDATE workflow_leases SET expires_at = NOW(6) WHERE node_id = %s AND expires_at > NOW(6)

-- delete_node --
-- A node stops: it is no longer live
DELETE FROM workflow_nodes WHERE node_id = %s

-- live_nodes --
-- The live nodes, with each role they hold now (one row per role; NULL when none)
SELECT n.node_id, n.started_at, n.heartbeat_at, l.role
FROM workflow_nodes n
LEFT JOIN workflow_leases l ON l.node_id = n.node_id AND l.expires_at > NOW(6)
WHERE n.expires_at > NOW(6)
ORDER BY n.node_id, l.role

-- has_outbox_events --
-- Whether a workflow has outbox events waiting
SELECT EXISTS (SELECT 1 FROM workflow_outbox WHERE workflow_name = %s)
