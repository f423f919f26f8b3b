-- Recovered renditions of cut-short recordings (issue 16). A recovery job
-- can wait for a complete recording of the same camera to supply the codec
-- configuration (`waiting`); SQLite cannot change a CHECK constraint, so
-- the job table is rebuilt with the same rows.
CREATE TABLE rendition_jobs_new (
    original_id TEXT NOT NULL REFERENCES originals(id),
    kind        TEXT NOT NULL CHECK (kind IN ('playable', 'thumbnail')),
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'skipped', 'waiting')),
    plan        TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try    INTEGER NOT NULL,
    last_error  TEXT,
    updated_at  INTEGER NOT NULL,
    owner       TEXT,
    heartbeat   INTEGER,
    PRIMARY KEY (original_id, kind)
) STRICT, WITHOUT ROWID;
INSERT INTO rendition_jobs_new (original_id, kind, state, plan, attempts, next_try, last_error, updated_at, owner, heartbeat)
    SELECT original_id, kind, state, plan, attempts, next_try, last_error, updated_at, owner, heartbeat FROM rendition_jobs;
DROP TABLE rendition_jobs;
ALTER TABLE rendition_jobs_new RENAME TO rendition_jobs;
CREATE INDEX rendition_jobs_due ON rendition_jobs(next_try) WHERE state = 'queued';
CREATE INDEX rendition_jobs_open ON rendition_jobs(state) WHERE state IN ('queued', 'running');
CREATE INDEX rendition_jobs_failed ON rendition_jobs(updated_at, original_id) WHERE state = 'failed';
CREATE INDEX rendition_jobs_waiting ON rendition_jobs(original_id) WHERE state = 'waiting';

-- What a recovered rendition holds and where it came from (JSON: frames,
-- seconds, byte range, the reference recording); NULL for every other.
ALTER TABLE renditions ADD COLUMN recovery TEXT;
