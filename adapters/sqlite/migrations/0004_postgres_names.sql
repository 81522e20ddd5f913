-- Version 4: the tables and indexes take the names the PostgreSQL adapters give them,
-- so both SQL adapters call one schema by one set of names. The columns stay as they
-- are (times in INTEGER microseconds, AUTOINCREMENT event ids).
--
-- ALTER TABLE ... RENAME keeps every row, and moves the table's AUTOINCREMENT counter
-- in sqlite_sequence with it: new event and timeout ids continue after the old ones.
ALTER TABLE records RENAME TO workflow_records;
ALTER TABLE snapshots RENAME TO workflow_record_snapshots;
ALTER TABLE outbox RENAME TO workflow_outbox;
ALTER TABLE events RENAME TO workflow_events;
ALTER TABLE cursors RENAME TO workflow_cursors;
ALTER TABLE error_counts RENAME TO workflow_error_counts;
ALTER TABLE timeouts RENAME TO workflow_timeouts;
ALTER TABLE in_flight RENAME TO workflow_in_flight;

-- SQLite cannot rename an index: each one is made again, on the same columns, under
-- PostgreSQL's name. The whole version is one transaction, so the one-unfinished-run
-- rule is never off for another writer.
DROP INDEX records_one_unfinished_run;
CREATE UNIQUE INDEX workflow_records_one_unfinished ON workflow_records (workflow_name, foreign_id)
    WHERE run_state IN (1, 2, 3);

DROP INDEX records_by_foreign_id;
CREATE INDEX workflow_records_latest ON workflow_records (workflow_name, foreign_id, created_at, id);

DROP INDEX records_by_workflow;
CREATE INDEX workflow_records_by_workflow ON workflow_records (workflow_name, created_at, id);

DROP INDEX records_by_creation;
CREATE INDEX workflow_records_by_created ON workflow_records (created_at, id);

DROP INDEX outbox_by_workflow;
CREATE INDEX workflow_outbox_by_workflow ON workflow_outbox (workflow_name, seq);

DROP INDEX events_by_topic;
CREATE INDEX workflow_events_by_topic ON workflow_events (topic, id);

DROP INDEX error_counts_by_run;
CREATE INDEX workflow_error_counts_by_run ON workflow_error_counts (run_id);

DROP INDEX timeouts_pending;
CREATE INDEX workflow_timeouts_valid ON workflow_timeouts (workflow_name, status, expire_at) WHERE completed = 0;

-- Releases before this one look for their schema version in schema_migrations. This view
-- shows them the versions recorded now, so an older release that opens this file refuses
-- it ("newer than this actorflow knows: upgrade actorflow") instead of creating empty
-- tables under the old names beside the real ones.
CREATE VIEW schema_migrations AS SELECT version, name, applied_at FROM actorflow_migrations;
