-- Version 6: the live node processes sharing the file and the roles each may work
-- (SqliteRoleScheduler's membership). Times are INTEGER microseconds by SQLite's clock.
CREATE TABLE workflow_nodes (
    node_id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE workflow_node_roles (
    node_id TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (node_id, role)
) WITHOUT ROWID;
CREATE INDEX workflow_leases_by_node ON workflow_leases (node_id);
