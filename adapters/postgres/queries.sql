-- The PostgreSQL adapters' queries: one named block each, a one-line description under the
-- name (the format of adapters/_sql/queries.py, shared with the SQLite adapters). Full-line
-- comments are for people: the loader drops them, so a '%' in them never reaches psycopg.
-- {record_columns} is filled in when the file is loaded (adapters/_sql's RECORD_COLUMNS
-- order); {publish}, {forget}, {scrub}, {source} and {fenced} when recordstore.py builds its statements;
-- {where} and {direction} when a list runs; {schema} (an identifier) by _schema.py.

-- create_schema --
-- Create the adapters' schema if it is missing ({schema}: a quoted identifier)
CREATE SCHEMA IF NOT EXISTS {schema}

-- wait_for_locks --
-- No lock timeout in this transaction (the sessions' default is a short one, see _connect.py)
SET LOCAL lock_timeout = 0

-- lock_schema --
-- Hold the schema's advisory lock until the transaction ends: one migrator at a time
SELECT pg_advisory_xact_lock(%s)

-- create_migrations_table --
-- The table that records which schema versions were applied (in the adapters' schema: the search_path)
CREATE TABLE IF NOT EXISTS actorflow_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- select_migrations --
-- The schema versions applied to this schema
SELECT version FROM actorflow_migrations ORDER BY version

-- insert_migration --
-- Record that a schema version was applied (now)
INSERT INTO actorflow_migrations (version, name) VALUES (%s, %s)

-- terminate_schema_sessions --
-- Cut this library's other sessions on a schema (named by application_name) before dropping it
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE application_name = %s AND pid <> pg_backend_pid()

-- end_stuck_sessions --
-- End this library's sessions on the schema whose client stopped inside a transaction (a
-- frozen node): waiting to read from it, for longer than a number of seconds. Mid-pipeline
-- ("active") no server timeout ends them, and idle in transaction the server's own timeout
-- was seen not to fire for a SIGSTOPped client; the locks they hold (a lease share-locked
-- by a fenced write, rows being written) would keep the role's next holder waiting for ever.
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid()
  AND datname = current_database() AND wait_event = 'ClientRead' AND xact_start IS NOT NULL
  AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
  AND state_change < clock_timestamp() - make_interval(secs => %s)

-- drop_schema --
-- Drop the adapters' schema and everything in it ({schema}: a quoted identifier)
DROP SCHEMA IF EXISTS {schema} CASCADE

-- notify --
-- Queue a notification on the database's channel (delivered when the transaction commits)
SELECT pg_notify(%s, %s)

-- update_record --
-- The next version of a run, only over the version the writer read; returns 1 row when stored
WITH upd AS (
    UPDATE workflow_records
    SET run_state = %s, status = %s, object = %s, updated_at = %s, version = %s,
        run_state_reason = %s, status_description = %s, trace_origin = %s
    WHERE run_id = %s AND version = %s
    RETURNING *
), snap AS (
    INSERT INTO workflow_record_snapshots ({record_columns})
    SELECT {record_columns} FROM upd
), {forget}{scrub}{publish}
SELECT count(*) FROM upd

-- commit_lease --
-- (A commit's first CTE, when its writes are fenced) the node's lease on the role if current and live, share-locked to the commit's end
lease AS MATERIALIZED (
    SELECT 1 AS ok FROM workflow_leases
    WHERE role = %s AND node_id = %s AND term = %s AND expires_at > clock_timestamp()
    FOR SHARE
)

-- commit_updates --
-- (A commit's CTEs) the next versions of many runs (a JSON array, an object a record), each over the version its writer read
-- Binding a statement a record cost the interpreter about 24 us a record, one JSON text
-- about 10 (the node's bound on PostgreSQL is its interpreter). A run appears at most
-- once (the adapter splits a batch so). Each record's event goes to the event log (topic
-- and shard hash given) or to the outbox (its id given). The object comes as hex, the
-- times as ISO text (read in the session's UTC). {fenced}: no rows unless the lease holds.
v AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%s::json) AS v(
        i integer, r text, v bigint, s smallint, t integer, o text, u timestamptz,
        rr text, sd text, tr text, tp text, h json, sh bigint, ob text)
    {fenced}
), upd AS (
    UPDATE workflow_records rec
    SET run_state = v.s, status = v.t, object = decode(v.o, 'hex'), updated_at = v.u, version = v.v,
        run_state_reason = v.rr, status_description = v.sd, trace_origin = v.tr
    FROM v WHERE rec.run_id = v.r AND rec.version = v.v - 1
    RETURNING rec.*, v.i, v.tp, v.h, v.sh, v.ob
), snap AS (
    INSERT INTO workflow_record_snapshots ({record_columns})
    SELECT {record_columns} FROM upd
), {forget}pub AS (
    INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)
    SELECT tp, run_id, status, h::text, updated_at, sh FROM upd WHERE ob IS NULL ORDER BY i
), box AS (
    INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at)
    SELECT ob, workflow_name, run_id, status, h::text, updated_at FROM upd WHERE ob IS NOT NULL ORDER BY i
)

-- commit_insert --
-- (A commit's CTEs) a new run (a JSON array of one object, commit_updates' keys and wf, fi, c) with its snapshot and its event or outbox row
-- The unique partial index refuses a second unfinished run of the foreign id, NOT EXISTS a
-- run while another of the foreign id is unfinished. One run a statement: NOT EXISTS does
-- not see the statement's own rows.
nv AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%s::json) AS nv(
        wf text, fi text, c timestamptz, r text, v bigint, s smallint, t integer, o text, u timestamptz,
        rr text, sd text, tr text, tp text, h json, sh bigint, ob text)
    {fenced}
), ins AS (
    INSERT INTO workflow_records ({record_columns})
    SELECT wf, fi, r, s, t, decode(o, 'hex'), c, u, v, rr, sd, tr
    FROM nv
    WHERE NOT EXISTS (
        SELECT 1 FROM workflow_records rec
        WHERE rec.workflow_name = nv.wf AND rec.foreign_id = nv.fi AND rec.run_state IN (1, 2, 3)
    )
    ON CONFLICT DO NOTHING
    RETURNING *
), nsnap AS (
    INSERT INTO workflow_record_snapshots ({record_columns})
    SELECT {record_columns} FROM ins
), npub AS (
    INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)
    SELECT nv.tp, ins.run_id, ins.status, nv.h::text, ins.updated_at, nv.sh FROM ins, nv WHERE nv.ob IS NULL
), nbox AS (
    INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at)
    SELECT nv.ob, ins.workflow_name, ins.run_id, ins.status, nv.h::text, ins.updated_at FROM ins, nv
    WHERE nv.ob IS NOT NULL
)

-- commit_cursors --
-- (A commit's CTE) receivers' cursor moves (a JSON array, one a receiver), each only forward
mv AS (
    INSERT INTO workflow_cursors (topic, name, xid, id)
    SELECT a.topic, a.name, a.xid::xid8, a.id FROM json_to_recordset(%s::json) AS a(topic text, name text, xid text, id bigint)
    {fenced}
    ON CONFLICT (topic, name) DO UPDATE SET xid = excluded.xid, id = excluded.id
    WHERE (workflow_cursors.xid, workflow_cursors.id) < (excluded.xid, excluded.id)
)

-- commit_notify --
-- (A commit's last column) queue its notifications (an array of payloads), delivered when it commits
(SELECT count(pg_notify(%s, n)) FROM unnest(%s::text[]) AS n)

-- forget_errors_of_all --
-- (Spliced into commit_updates when the engine asks) forget the step error counts of every run stored
clr AS (
    DELETE FROM workflow_error_counts WHERE run_id IN (SELECT run_id FROM upd)
)

-- forget_errors --
-- (Spliced into update_record when the engine asks) forget the run's step error counts
-- They are stale once the run has a new version: the engine counts per visit
-- (process@version). One index probe.
clr AS (
    DELETE FROM workflow_error_counts WHERE run_id = (SELECT run_id FROM upd)
)

-- scrub_snapshots --
-- (Spliced into update_record for a Data Deleted version) the replacement object in every earlier snapshot
-- The deletion must leave nothing of the original object; the rest of each version
-- (status, run state, times) stays. The statement's snapshot does not see "snap"'s new
-- row, and the version condition says so anyway.
scrub AS (
    UPDATE workflow_record_snapshots s SET object = upd.object
    FROM upd WHERE s.run_id = upd.run_id AND s.version < upd.version
)

-- publish_event --
-- (Spliced into update_record) the event, in the record's transaction
pub AS (
    INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)
    SELECT %s, %s, %s, %s, %s, %s FROM {source}
)

-- publish_outbox --
-- (Spliced into update_record) the outbox row, in the record's transaction
pub AS (
    INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at)
    SELECT %s, %s, %s, %s, %s, %s FROM {source}
)

-- run_exists --
-- Whether a run id is stored (a row when it is)
SELECT 1 FROM workflow_records WHERE run_id = %s

-- lookup --
-- The current version of a run
SELECT {record_columns} FROM workflow_records WHERE run_id = %s

-- lookup_many --
-- The current versions of many runs (their ids given as one array)
SELECT {record_columns} FROM workflow_records WHERE run_id = ANY(%s)

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
SELECT workflow_name, status, max(status_description), run_state, count(*)
FROM workflow_records WHERE {where}
GROUP BY workflow_name, status, run_state ORDER BY workflow_name, status, run_state

-- carries_events_of --
-- Whether this database's event log is used for a workflow (its cursors, or events of given topics)
SELECT EXISTS (SELECT 1 FROM workflow_cursors WHERE substr(topic, 1, %s) = %s)
    OR EXISTS (SELECT 1 FROM workflow_events WHERE topic = ANY(%s))

-- snapshots --
-- Every stored version of a run, oldest first
SELECT {record_columns} FROM workflow_record_snapshots WHERE run_id = %s ORDER BY version

-- list_outbox --
-- A workflow's outbox events, oldest first
SELECT id, workflow_name, run_id, type, headers, created_at
FROM workflow_outbox WHERE workflow_name = %s ORDER BY seq LIMIT %s

-- delete_outbox --
-- Remove relayed outbox events (their ids given as one array)
DELETE FROM workflow_outbox WHERE id = ANY(%s)

-- add_error --
-- Count one more step error of (process, run) and return the count
INSERT INTO workflow_error_counts (process, run_id, count) VALUES (%s, %s, 1)
ON CONFLICT (process, run_id) DO UPDATE SET count = workflow_error_counts.count + 1
RETURNING count

-- clear_errors --
-- Forget the step errors of (process, run)
DELETE FROM workflow_error_counts WHERE process = %s AND run_id = %s

-- begin_batch --
-- Note the runs a consumer is about to handle (JSON list)
INSERT INTO workflow_in_flight (process, run_ids) VALUES (%s, %s)
ON CONFLICT (process) DO UPDATE SET run_ids = excluded.run_ids

-- unfinished_batch --
-- The runs a consumer noted and did not finish
SELECT run_ids FROM workflow_in_flight WHERE process = %s

-- end_batches --
-- A consumer stopped cleanly: nothing of it is in flight
DELETE FROM workflow_in_flight WHERE process = %s

-- insert_events --
-- Append an event to the log (from a sender)
INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash) VALUES (%s, %s, %s, %s, %s, %s)

-- read_events --
-- The next events of a receiver's share after its cursor, below the xmin cut, then maybe a marker row
-- Only below the oldest running transaction (the xmin cut): everything there is committed
-- or gone. The xid goes out as text under another name: ORDER BY must sort the xid8
-- column, and an output column named "xid" would make it sort text ("100000" < "99999").
-- After the events comes at most one marker row (run_id NULL): the first committed event
-- of the topic beyond the cut, if there is one, i.e. an older transaction that is still
-- open holds it back (its end may notify nobody, so the reader looks again soon). Not
-- filtered by shard: a shard with nothing of its own there would scan the whole held-back
-- region on every read; another shard's event only costs a cheap early re-poll.
-- The marker's index scan starts at the cut (or the cursor, if later): never across a backlog.
-- {along_...}: nothing here; in "read_events_along" (see _schema.py), each event's current
-- record too (LEFT JOIN workflow_records), when the record store shares the database.
-- {cut}: "events_cut" (the fast path), or "events_cut_refined" in the "..._refined" forms
-- read once the marker said events are held back (see _schema.py).
WITH cut AS MATERIALIZED ({cut})
SELECT r.id, r.cursor_xid, r.run_id, r.type, r.headers, r.created_at{along_outer}
FROM (
    (SELECT e.xid AS sort_xid, e.id, e.xid::text AS cursor_xid, e.run_id, e.type, e.headers, e.created_at{along_inner}
     FROM workflow_events e{along_join}
     WHERE e.topic = %(topic)s
       AND (e.xid, e.id) > (%(xid)s::xid8, %(id)s::bigint)
       AND e.xid < (SELECT xmin FROM cut)
       AND (%(count)s <= 1 OR e.shard_hash %% %(count)s = %(shard)s)
     ORDER BY e.xid, e.id
     LIMIT %(limit)s)
    UNION ALL
    (SELECT e.xid, e.id, e.xid::text, NULL, NULL, NULL, NULL{along_nulls}
     FROM workflow_events e
     WHERE e.topic = %(topic)s
       AND e.xid >= greatest((SELECT xmin FROM cut), %(xid)s::xid8)
       AND NOT (e.xid = %(xid)s::xid8 AND e.id <= %(id)s::bigint)
     ORDER BY e.xid, e.id
     LIMIT 1)
) r
ORDER BY r.sort_xid, r.id

-- events_cut --
-- read_events' cut (the fast path): the oldest transaction still running on the server
SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin

-- events_cut_refined --
-- read_events' cut without the transactions that cannot write this schema's event log (read while events are held back)
-- A transaction can only write here after it has touched this schema: a statement locks
-- the tables it names before it writes (and so before it can take a transaction id), and
-- holds those locks to the transaction's end. Every actorflow session works in its own
-- schema, every transaction of it touching it from its first statement, in every release
-- (no write protocol to agree on, so a rolling upgrade is safe). An in-progress xid counts
-- as foreign only when the lock table names the session holding it (its own xid's
-- ExclusiveLock) and shows that session holding, or waiting for, no lock on a relation of
-- this schema in this database: another database's session, another schema's, a report
-- left open. The lock table is read once (pg_locks is one consistent view: an xid holder
-- seen without such a lock had none at that instant, so its transaction never wrote here).
-- Prepared transactions of other databases are foreign too. Everything else still in
-- progress holds the cut: a session that ended between the snapshot and the scan (it may
-- have committed events this statement cannot see), one we cannot see, a prepared
-- transaction of this database. With none left, the cut is the snapshot's xmax: every xid
-- below it has ended. NOT EXISTS, not NOT IN: a NULL in the list must never make an xid
-- foreign.
WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
locks AS MATERIALIZED (
    SELECT locktype, database, relation, transactionid, pid, mode, granted
    FROM pg_locks WHERE pid IS NOT NULL AND locktype IN ('relation', 'transactionid')),
here AS MATERIALIZED (
    SELECT DISTINCT l.pid
    FROM locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.locktype = 'relation'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())),
foreign_xids AS MATERIALIZED (
    SELECT l.transactionid AS xid
    FROM locks l
    WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
      AND NOT EXISTS (SELECT 1 FROM here h WHERE h.pid = l.pid)
    UNION ALL
    SELECT p.transaction FROM pg_prepared_xacts p WHERE p.database <> current_database())
SELECT coalesce(
    (SELECT min(x) FROM snap, pg_snapshot_xip(snap.s) AS x
     WHERE NOT EXISTS (SELECT 1 FROM foreign_xids f WHERE f.xid = x::xid)),
    (SELECT pg_snapshot_xmax(s) FROM snap)) AS xmin

-- oldest_transaction --
-- The session whose open transaction holds the refined cut (none: a prepared transaction, or it just ended)
-- {cut} is events_cut_refined: the warning names the transaction that really holds delivery.
WITH cut AS MATERIALIZED ({cut})
SELECT pid, state, xact_start, query_start, application_name, datname
FROM pg_stat_activity
WHERE backend_xid = (SELECT xmin FROM cut)::xid
LIMIT 1

-- read_cursor --
-- The last acknowledged (xid, id) of a receiver name
SELECT xid::text AS cursor_xid, id FROM workflow_cursors WHERE topic = %s AND name = %s

-- head_cursor --
-- Where a stream-from-latest receiver starts: after every event committed now
-- Including those above the xmin cut (events of transactions still open now may be
-- skipped: they were sent before the receiver was made). (max xid, max id) is after
-- every such row.
SELECT coalesce(max(e.xid)::text, '0') AS cursor_xid, coalesce(max(e.id), 0) AS cursor_id
FROM workflow_events e
WHERE e.topic = %s

-- save_cursor --
-- Move a receiver's cursor forward (never back: acks are cumulative)
INSERT INTO workflow_cursors (topic, name, xid, id) VALUES (%s, %s, %s::xid8, %s::bigint)
ON CONFLICT (topic, name) DO UPDATE SET xid = excluded.xid, id = excluded.id
WHERE (workflow_cursors.xid, workflow_cursors.id) < (excluded.xid, excluded.id)

-- save_cursor_fenced --
-- Move a receiver's cursor forward only while a node's lease on its role is current; says whether it was.
-- One statement: a plain read of the lease (not share-locked: an ack racing a hand-over by
-- microseconds only marks as done what the node committed), so the heartbeats' renewals never wait for it
WITH lease AS (
    SELECT 1 FROM workflow_leases
    WHERE role = %(role)s AND node_id = %(node)s AND term = %(term)s AND expires_at > clock_timestamp()
), saved AS (
    INSERT INTO workflow_cursors (topic, name, xid, id)
    SELECT %(topic)s, %(name)s, %(xid)s::xid8, %(id)s::bigint FROM lease
    ON CONFLICT (topic, name) DO UPDATE SET xid = excluded.xid, id = excluded.id
    WHERE (workflow_cursors.xid, workflow_cursors.id) < (excluded.xid, excluded.id)
)
SELECT EXISTS (SELECT 1 FROM lease)

-- set_delete_lock_timeout --
-- Give up on a table lock after two seconds in this transaction (the clean-up tries again later)
SET LOCAL lock_timeout = '2s'

-- delete_old_events --
-- Delete at most a batch of the events created before a time, oldest first
-- Nodes cleaning up at once skip each other's rows instead of waiting on them.
DELETE FROM workflow_events WHERE id IN (
    SELECT id FROM workflow_events WHERE created_at < %s ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
)

-- create_timeout --
-- Store a timeout and return its id
INSERT INTO workflow_timeouts
    (workflow_name, foreign_id, run_id, status, expire_at, created_at, timeout_index, record_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id

-- complete_timeout --
-- Mark a timeout done
UPDATE workflow_timeouts SET completed = true WHERE id = %s

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
FROM workflow_timeouts WHERE workflow_name = %s AND status = %s AND NOT completed AND expire_at <= %s ORDER BY id

-- acquire_role --
-- Take or renew a role for a node (timed by the database clock); the term grows with each new holder
INSERT INTO workflow_leases AS l (role, node_id, term, expires_at)
VALUES (%(role)s, %(node)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (role) DO UPDATE
SET node_id = excluded.node_id,
    term = l.term + CASE WHEN l.node_id = excluded.node_id THEN 0 ELSE 1 END,
    expires_at = excluded.expires_at
WHERE l.node_id = excluded.node_id OR l.expires_at <= clock_timestamp()
RETURNING term

-- release_role --
-- Give a role up at once if the node holds it (the row and its term stay for the next holder)
UPDATE workflow_leases SET expires_at = clock_timestamp()
WHERE role = %s AND node_id = %s AND expires_at > clock_timestamp()

-- role_holders --
-- The roles held now, by whom and under which term
SELECT role, node_id, term FROM workflow_leases WHERE expires_at > clock_timestamp() ORDER BY role

-- check_fence --
-- A node's lease on a role, if it is still the role's current and live one; share-locked until the write commits
SELECT 1 FROM workflow_leases
WHERE role = %s AND node_id = %s AND term = %s AND expires_at > clock_timestamp()
FOR SHARE

-- join_node --
-- Register a node as live for a ttl (a node still live keeps its start time)
INSERT INTO workflow_nodes AS n (node_id, started_at, heartbeat_at, expires_at)
VALUES (%(node)s, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (node_id) DO UPDATE
SET heartbeat_at = excluded.heartbeat_at,
    expires_at = excluded.expires_at,
    started_at = CASE WHEN n.expires_at > clock_timestamp() THEN n.started_at ELSE excluded.started_at END

-- clear_node_roles --
-- Forget the roles a node said it may work (it says them again when it joins)
DELETE FROM workflow_node_roles WHERE node_id = %s

-- add_node_role --
-- A role a node may work
INSERT INTO workflow_node_roles (node_id, role) VALUES (%s, %s) ON CONFLICT DO NOTHING

-- forget_dead_nodes --
-- Drop the nodes away for an hour, with the roles they said they may work
WITH dead AS (
    DELETE FROM workflow_nodes WHERE expires_at < clock_timestamp() - interval '1 hour' RETURNING node_id
)
DELETE FROM workflow_node_roles WHERE node_id IN (SELECT node_id FROM dead)

-- heartbeat --
-- Renew a live node and every lease it holds in one statement; the fleet as it is: what, whose, who may
-- Rows: ('node', node id) when the node was live; ('lease', role, term) per renewed lease;
-- ('candidate', role, node) per role a live node may work; ('holder', role, node) per lease held now.
WITH node AS (
    UPDATE workflow_nodes
    SET heartbeat_at = clock_timestamp(), expires_at = clock_timestamp() + make_interval(secs => %(ttl)s)
    WHERE node_id = %(node)s AND expires_at > clock_timestamp()
    RETURNING node_id
), renewed AS (
    UPDATE workflow_leases
    SET expires_at = clock_timestamp() + make_interval(secs => %(ttl)s)
    WHERE node_id = %(node)s AND expires_at > clock_timestamp() AND EXISTS (SELECT 1 FROM node)
    RETURNING role, term
)
SELECT 'node', node_id, NULL FROM node
UNION ALL
SELECT 'lease', role, term::text FROM renewed
UNION ALL
SELECT 'candidate', r.role, r.node_id
FROM workflow_node_roles r JOIN workflow_nodes n ON n.node_id = r.node_id
WHERE n.expires_at > clock_timestamp()
UNION ALL
SELECT 'holder', l.role, l.node_id FROM workflow_leases l WHERE l.expires_at > clock_timestamp()

-- leave_node --
-- A node stops: its leases are released at once, and it is no longer live
WITH released AS (
    UPDATE workflow_leases SET expires_at = clock_timestamp()
    WHERE node_id = %(node)s AND expires_at > clock_timestamp()
    RETURNING role
), gone AS (
    DELETE FROM workflow_nodes WHERE node_id = %(node)s RETURNING node_id
)
DELETE FROM workflow_node_roles WHERE node_id = %(node)s

-- live_nodes --
-- The live nodes, with each role they hold now (one row per role; NULL when none)
SELECT n.node_id, n.started_at, n.heartbeat_at, l.role
FROM workflow_nodes n
LEFT JOIN workflow_leases l ON l.node_id = n.node_id AND l.expires_at > clock_timestamp()
WHERE n.expires_at > clock_timestamp()
ORDER BY n.node_id, l.role
