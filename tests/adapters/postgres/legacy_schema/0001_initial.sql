-- actorflow schema, version 1. Runs inside the adapter's schema (search_path).

CREATE TABLE workflow_records (
    run_id             text        PRIMARY KEY,
    workflow_name      text        NOT NULL,
    foreign_id         text        NOT NULL,
    run_state          smallint    NOT NULL,
    status             integer     NOT NULL,
    object             bytea       NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint      NOT NULL,
    run_state_reason   text        NOT NULL DEFAULT '',
    status_description text        NOT NULL DEFAULT '',
    trace_origin       text        NOT NULL DEFAULT '',
    -- creation order among runs created at the same instant
    created_seq        bigserial   NOT NULL
);

-- One unfinished (initiated, running, paused) run per foreign id, enforced atomically.
CREATE UNIQUE INDEX workflow_records_one_unfinished
    ON workflow_records (workflow_name, foreign_id) WHERE run_state IN (1, 2, 3);
CREATE INDEX workflow_records_latest
    ON workflow_records (workflow_name, foreign_id, created_at DESC, created_seq DESC);
CREATE INDEX workflow_records_by_workflow ON workflow_records (workflow_name, created_at, created_seq);
CREATE INDEX workflow_records_by_created ON workflow_records (created_at, created_seq);

-- Every stored version of every run (await_status and the testing helpers read them).
CREATE TABLE workflow_record_snapshots (
    run_id             text        NOT NULL,
    version            bigint      NOT NULL,
    workflow_name      text        NOT NULL,
    foreign_id         text        NOT NULL,
    run_state          smallint    NOT NULL,
    status             integer     NOT NULL,
    object             bytea       NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    run_state_reason   text        NOT NULL DEFAULT '',
    status_description text        NOT NULL DEFAULT '',
    trace_origin       text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, version)
);

-- Events waiting for the outbox relay (when the streamer is not in this database).
CREATE TABLE workflow_outbox (
    seq           bigserial   PRIMARY KEY,
    id            text        NOT NULL UNIQUE,
    workflow_name text        NOT NULL,
    run_id        text        NOT NULL,
    type          integer     NOT NULL,
    headers       text        NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX workflow_outbox_by_workflow ON workflow_outbox (workflow_name, seq);

-- The event log. Readers order by (xid, id) and only read below the oldest running
-- transaction (pg_snapshot_xmin), so an event committed late is never skipped.
CREATE TABLE workflow_events (
    id         bigserial   PRIMARY KEY,
    xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    topic      text        NOT NULL,
    run_id     text        NOT NULL,
    type       integer     NOT NULL,
    headers    text        NOT NULL,
    created_at timestamptz NOT NULL,
    shard_hash bigint      NOT NULL
);
CREATE INDEX workflow_events_by_topic ON workflow_events (topic, xid, id);
CREATE INDEX workflow_events_by_created ON workflow_events (created_at);

-- Durable receiver cursors: the last acknowledged (xid, id) per receiver.
CREATE TABLE workflow_cursors (
    topic text   NOT NULL,
    name  text   NOT NULL,
    xid   xid8   NOT NULL,
    id    bigint NOT NULL,
    PRIMARY KEY (topic, name)
);

-- Step errors per (process, run): pause_after_err_count holds across restarts.
CREATE TABLE workflow_error_counts (
    process text    NOT NULL,
    run_id  text    NOT NULL,
    count   integer NOT NULL,
    PRIMARY KEY (process, run_id)
);

CREATE TABLE workflow_timeouts (
    id            bigserial   PRIMARY KEY,
    workflow_name text        NOT NULL,
    foreign_id    text        NOT NULL,
    run_id        text        NOT NULL,
    status        integer     NOT NULL,
    completed     boolean     NOT NULL DEFAULT false,
    expire_at     timestamptz NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX workflow_timeouts_valid ON workflow_timeouts (workflow_name, status, expire_at) WHERE NOT completed;
