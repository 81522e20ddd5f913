-- Version 5: role leases shared by the node processes of one file (SqliteRoleScheduler).
-- Expiry is INTEGER microseconds since the epoch, UTC, by SQLite's own clock (the one
-- host's clock every process on it shares); the term grows with each new holder and is
-- never reset (a released lease keeps its row, expired), for fencing.
CREATE TABLE workflow_leases (
    role TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    term INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
