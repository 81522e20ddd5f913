-- actorflow schema, version 4: role leases shared by the nodes of a fleet
-- (PostgresRoleScheduler). A lease is timed by the database's clock; its term grows
-- with each new holder and is never reset (a released lease keeps its row, expired),
-- so a write made under an older term is told from its successor's (fencing).
CREATE TABLE workflow_leases (
    role       text        PRIMARY KEY,
    node_id    text        NOT NULL,
    term       bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);
