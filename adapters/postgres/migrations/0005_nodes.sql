-- actorflow schema, version 5: the live nodes of a fleet and the roles each may work
-- (PostgresRoleScheduler's membership). A node is live while its heartbeat keeps
-- expires_at ahead of the database clock; roles are placed over the live nodes that
-- may work them (rendezvous hashing, in the engine).
CREATE TABLE workflow_nodes (
    node_id      text        PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE TABLE workflow_node_roles (
    node_id text NOT NULL,
    role    text NOT NULL,
    PRIMARY KEY (node_id, role)
);
CREATE INDEX workflow_leases_by_node ON workflow_leases (node_id);
