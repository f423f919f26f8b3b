-- Every list on the console is a page of an index (issue 13): ingest
-- problems (every pending state but `waiting`) in the order they were first
-- seen; open alerts, and alerts of one kind, newest first.
CREATE INDEX pending_problems ON pending(first_seen, station, rel_path) WHERE state != 'waiting';
CREATE INDEX alerts_open_time ON alerts(opened_at, id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_kind_time ON alerts(kind, opened_at, id);
