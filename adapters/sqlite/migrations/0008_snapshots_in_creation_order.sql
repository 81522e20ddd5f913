-- Version 8: snapshots kept in the order they are written. Keyed by (run_id, version) in
-- a WITHOUT ROWID table, each new version went into the middle of the table's B-tree, at
-- a random page (run ids are random): a commit of many transitions dirtied a page per
-- row, every row and its object written out again with the page. A rowid table appends;
-- only the small (run_id, version) index takes random pages.
CREATE TABLE workflow_record_snapshots_v8 (
    seq INTEGER PRIMARY KEY,
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
    trace_origin TEXT NOT NULL DEFAULT ''
);

INSERT INTO workflow_record_snapshots_v8 (
    run_id, version, workflow_name, foreign_id, run_state, status, object, created_at, updated_at,
    run_state_reason, status_description, trace_origin
)
SELECT run_id, version, workflow_name, foreign_id, run_state, status, object, created_at, updated_at,
       run_state_reason, status_description, trace_origin
FROM workflow_record_snapshots ORDER BY updated_at, run_id, version;

DROP TABLE workflow_record_snapshots;
ALTER TABLE workflow_record_snapshots_v8 RENAME TO workflow_record_snapshots;

-- One snapshot per version of a run, and a run's snapshots read in version order.
CREATE UNIQUE INDEX workflow_record_snapshots_by_run ON workflow_record_snapshots (run_id, version);
