-- actorflow schema, version 3: storing a new version of a run forgets all of its step
-- error counts (they are counted per visit, so every earlier count is stale), in the
-- update's own statement: one index probe per stored version.
CREATE INDEX workflow_error_counts_by_run ON workflow_error_counts (run_id);
