-- actorflow schema, version 2: the runs each consumer is handling, so the next holder of
-- a role can find a run that killed its node (see actorflow.protocols.InFlightLog).
CREATE TABLE workflow_in_flight (
    process text PRIMARY KEY,
    run_ids text NOT NULL
);
