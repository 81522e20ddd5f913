-- Storing a new version of a run forgets all of its step error counts (they are counted
-- per visit, so every earlier count is stale): one index probe per stored version.
CREATE INDEX error_counts_by_run ON error_counts (run_id);
