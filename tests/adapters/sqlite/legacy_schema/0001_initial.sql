-- Version 1 (actorflow 0.1.0): every table of the SQLite adapters.
--
-- Times are INTEGER microseconds since the Unix epoch, UTC: ordering and filtering by
-- instant are exact, whatever zone the caller's datetimes were in.

-- Runs. `id` is the creation order (a stable tiebreak for list() and latest(); an
-- INTEGER PRIMARY KEY is never renumbered, unlike an implicit rowid on VACUUM);
-- `run_id` is the key every lookup uses.
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    workflow_name TEXT NOT NULL,
    foreign_id TEXT NOT NULL,
    run_state INTEGER NOT NULL,
    status INTEGER NOT NULL,
    object BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    run_state_reason TEXT NOT NULL DEFAULT '',
    status_description TEXT NOT NULL DEFAULT '',
    trace_origin TEXT NOT NULL DEFAULT ''
);

-- One unfinished (Initiated, Running, Paused) run per foreign id, enforced atomically.
CREATE UNIQUE INDEX records_one_unfinished_run ON records (workflow_name, foreign_id)
    WHERE run_state IN (1, 2, 3);

-- latest(): the most recently created run of a foreign id.
CREATE INDEX records_by_foreign_id ON records (workflow_name, foreign_id, created_at, id);

-- list(): one workflow's runs, or every run, in creation order.
CREATE INDEX records_by_workflow ON records (workflow_name, created_at, id);
CREATE INDEX records_by_creation ON records (created_at, id);

-- Every stored version of every run (await_status and the testing helpers read them).
CREATE TABLE snapshots (
    run_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    workflow_name TEXT NOT NULL,
    foreign_id TEXT NOT NULL,
    run_state INTEGER NOT NULL,
    status INTEGER NOT NULL,
    object BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    run_state_reason TEXT NOT NULL DEFAULT '',
    status_description TEXT NOT NULL DEFAULT '',
    trace_origin TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, version)
) WITHOUT ROWID;

-- Events written beside their records, waiting for the outbox relay; `seq` is write order.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workflow_name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    headers TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX outbox_by_workflow ON outbox (workflow_name, seq);

-- The event log. AUTOINCREMENT: an id is never reused, so a cursor never points at a
-- later event than the one it acknowledged. `shard_hash` is zlib.crc32(run_id).
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    run_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    headers TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    shard_hash INTEGER NOT NULL
);
CREATE INDEX events_by_topic ON events (topic, id);

-- Durable receiver cursors: the last acknowledged event id per (topic, receiver name).
CREATE TABLE cursors (
    topic TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (topic, name)
) WITHOUT ROWID;

-- Step errors per (process, run), so pause_after_err_count survives a restart.
CREATE TABLE error_counts (
    process TEXT NOT NULL,
    run_id TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (process, run_id)
) WITHOUT ROWID;

-- Timeouts; AUTOINCREMENT keeps ids increasing even after cancelled ones are deleted.
CREATE TABLE timeouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_name TEXT NOT NULL,
    foreign_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    expire_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX timeouts_pending ON timeouts (workflow_name, status, expire_at) WHERE completed = 0;
