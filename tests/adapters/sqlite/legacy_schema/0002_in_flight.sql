-- The runs each consumer is handling, so the next holder of a role can find a run that
-- killed its node (see actorflow.protocols.InFlightLog).
CREATE TABLE in_flight (
    process TEXT PRIMARY KEY,
    run_ids TEXT NOT NULL
);
