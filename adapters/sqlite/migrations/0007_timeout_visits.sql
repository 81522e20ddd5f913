-- Version 7: which timeout of its status a timeout is (the position of its timer among
-- the status's timeouts, in the order they were added) and the run's version when it
-- reached the status (the visit that set it). Rows stored before stay NULL in both and
-- fire as before: every timeout function of the status is tried.
ALTER TABLE workflow_timeouts ADD COLUMN timeout_index INTEGER;
ALTER TABLE workflow_timeouts ADD COLUMN record_version INTEGER;
