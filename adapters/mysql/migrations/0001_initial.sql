-- actorflow schema for MySQL/MariaDB, version 1: every table of PostgreSQL's schema
-- versions 1-6, in one step (this adapter starts at that schema), plus the event sequence.
--
-- InnoDB, utf8mb4. Text keys use a binary NO PAD collation: ids are compared byte for
-- byte ("Case" is not "case", "a " is not "a"), as PostgreSQL and SQLite compare them.
-- Times are DATETIME(6) in UTC (the sessions' time zone is +00:00).
--
-- MySQL commits every DDL statement on its own: a script cannot be one transaction. So
-- each statement is written to be run again (IF NOT EXISTS): a migration cut off half
-- way is finished by the next run, which holds the same named lock (GET_LOCK).

CREATE TABLE IF NOT EXISTS workflow_records (
    run_id             VARCHAR(255) NOT NULL,
    workflow_name      VARCHAR(255) NOT NULL,
    foreign_id         VARCHAR(255) NOT NULL,
    run_state          SMALLINT     NOT NULL,
    status             INTEGER      NOT NULL,
    object             LONGBLOB     NOT NULL,
    created_at         DATETIME(6)  NOT NULL,
    updated_at         DATETIME(6)  NOT NULL,
    version            BIGINT       NOT NULL,
    run_state_reason   TEXT         NOT NULL,
    status_description TEXT         NOT NULL,
    trace_origin       TEXT         NOT NULL,
    -- creation order among runs created at the same instant
    created_seq        BIGINT       NOT NULL AUTO_INCREMENT,
    -- The foreign id while the run is unfinished (initiated, running, paused), else NULL.
    -- MySQL has no partial index: a unique index over (workflow_name, this column) is
    -- "one unfinished run per foreign id", enforced atomically (NULLs never collide).
    unfinished_foreign_id VARCHAR(255)
        AS (CASE WHEN run_state IN (1, 2, 3) THEN foreign_id END) STORED,
    PRIMARY KEY (run_id),
    UNIQUE KEY workflow_records_created_seq (created_seq),
    UNIQUE KEY workflow_records_one_unfinished (workflow_name, unfinished_foreign_id),
    KEY workflow_records_latest (workflow_name, foreign_id, created_at, created_seq),
    KEY workflow_records_by_workflow (workflow_name, created_at, created_seq),
    KEY workflow_records_by_created (created_at, created_seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Every stored version of every run (await_status and the testing helpers read them).
CREATE TABLE IF NOT EXISTS workflow_record_snapshots (
    run_id             VARCHAR(255) NOT NULL,
    version            BIGINT       NOT NULL,
    workflow_name      VARCHAR(255) NOT NULL,
    foreign_id         VARCHAR(255) NOT NULL,
    run_state          SMALLINT     NOT NULL,
    status             INTEGER      NOT NULL,
    object             LONGBLOB     NOT NULL,
    created_at         DATETIME(6)  NOT NULL,
    updated_at         DATETIME(6)  NOT NULL,
    run_state_reason   TEXT         NOT NULL,
    status_description TEXT         NOT NULL,
    trace_origin       TEXT         NOT NULL,
    PRIMARY KEY (run_id, version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Events waiting for the outbox relay (when the streamer is not in this database).
CREATE TABLE IF NOT EXISTS workflow_outbox (
    seq           BIGINT       NOT NULL AUTO_INCREMENT,
    id            VARCHAR(255) NOT NULL,
    workflow_name VARCHAR(255) NOT NULL,
    run_id        VARCHAR(255) NOT NULL,
    type          INTEGER      NOT NULL,
    headers       TEXT         NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY workflow_outbox_id (id),
    KEY workflow_outbox_by_workflow (workflow_name, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The event log. An event's seq is reserved from workflow_event_sequence by its
-- transaction, under that row's exclusive lock held until the commit: events become
-- visible in seq order, so a reader reading seq > cursor never skips one (streamer.py).
CREATE TABLE IF NOT EXISTS workflow_events (
    seq        BIGINT       NOT NULL,
    topic      VARCHAR(255) NOT NULL,
    run_id     VARCHAR(255) NOT NULL,
    type       INTEGER      NOT NULL,
    headers    TEXT         NOT NULL,
    created_at DATETIME(6)  NOT NULL,
    shard_hash BIGINT       NOT NULL,
    PRIMARY KEY (seq),
    KEY workflow_events_by_topic (topic, seq),
    KEY workflow_events_by_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The one row whose lock orders the writers of events (value: the last seq reserved).
CREATE TABLE IF NOT EXISTS workflow_event_sequence (
    id    TINYINT NOT NULL,
    value BIGINT  NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;
INSERT IGNORE INTO workflow_event_sequence (id, value) VALUES (1, 0);

-- Durable receiver cursors: the last acknowledged seq per (topic, receiver name).
CREATE TABLE IF NOT EXISTS workflow_cursors (
    topic VARCHAR(255) NOT NULL,
    name  VARCHAR(255) NOT NULL,
    seq   BIGINT       NOT NULL,
    PRIMARY KEY (topic, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Step errors per (process, run): pause_after_err_count holds across restarts.
CREATE TABLE IF NOT EXISTS workflow_error_counts (
    process VARCHAR(400) NOT NULL,
    run_id  VARCHAR(255) NOT NULL,
    count   INTEGER      NOT NULL,
    PRIMARY KEY (process, run_id),
    KEY workflow_error_counts_by_run (run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The runs each consumer is handling (actorflow.protocols.InFlightLog).
CREATE TABLE IF NOT EXISTS workflow_in_flight (
    process VARCHAR(400) NOT NULL,
    run_ids LONGTEXT     NOT NULL,
    PRIMARY KEY (process)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Timeouts. No partial index in MySQL: "completed" leads the valid-timeouts index instead.
CREATE TABLE IF NOT EXISTS workflow_timeouts (
    id             BIGINT       NOT NULL AUTO_INCREMENT,
    workflow_name  VARCHAR(255) NOT NULL,
    foreign_id     VARCHAR(255) NOT NULL,
    run_id         VARCHAR(255) NOT NULL,
    status         INTEGER      NOT NULL,
    completed      BOOLEAN      NOT NULL DEFAULT FALSE,
    expire_at      DATETIME(6)  NOT NULL,
    created_at     DATETIME(6)  NOT NULL,
    timeout_index  INTEGER,
    record_version BIGINT,
    PRIMARY KEY (id),
    KEY workflow_timeouts_valid (workflow_name, completed, status, expire_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- Role leases, timed by the database clock; the term grows with each new holder.
CREATE TABLE IF NOT EXISTS workflow_leases (
    role       VARCHAR(255) NOT NULL,
    node_id    VARCHAR(255) NOT NULL,
    term       BIGINT       NOT NULL,
    expires_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (role),
    KEY workflow_leases_by_node (node_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- The live nodes of a fleet and the roles each may work.
CREATE TABLE IF NOT EXISTS workflow_nodes (
    node_id      VARCHAR(255) NOT NULL,
    started_at   DATETIME(6)  NOT NULL,
    heartbeat_at DATETIME(6)  NOT NULL,
    expires_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (node_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS workflow_node_roles (
    node_id VARCHAR(255) NOT NULL,
    role    VARCHAR(255) NOT NULL,
    PRIMARY KEY (node_id, role)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
