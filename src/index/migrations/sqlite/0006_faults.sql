-- Faults, lost files and replaced docks: nothing stuck, nothing forgotten.

-- Pending files get two more states:
--   blocked: waits for an outage of the archive or the index to clear
--            (no attempt is counted against the file);
--   missing: its station's folder was replaced or unmounted while it was
--            pending; it is unaccounted for, and kept until it comes back.
-- `retry_requested`: an administrator asked for a failed file to be tried
-- again (CLI or API); the station's task takes it and clears it.
CREATE TABLE pending_v6 (
    station         TEXT NOT NULL REFERENCES stations(id),
    rel_path        BLOB NOT NULL,
    first_seen      INTEGER NOT NULL,
    size            INTEGER,
    state           TEXT NOT NULL
                    CHECK (state IN ('waiting', 'retrying', 'blocked', 'failed', 'rejected', 'missing')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    reason          TEXT,
    updated_at      INTEGER NOT NULL,
    deadline        INTEGER,
    retry_requested INTEGER,
    PRIMARY KEY (station, rel_path)
) STRICT, WITHOUT ROWID;
INSERT INTO pending_v6 (station, rel_path, first_seen, size, state, attempts, reason, updated_at, deadline)
    SELECT station, rel_path, first_seen, size, state, attempts, reason, updated_at, deadline FROM pending;
DROP TABLE pending;
ALTER TABLE pending_v6 RENAME TO pending;
CREATE INDEX pending_retry_requested ON pending(station) WHERE retry_requested IS NOT NULL;

-- Files a station showed that disappeared before they were stored: lost
-- evidence. Kept for ever (with what was known of them), counted in the
-- compliance report, and each carries a sticky `vanished_unstored` alert.
CREATE TABLE vanished (
    id          INTEGER PRIMARY KEY,
    station     TEXT NOT NULL,
    rel_path    BLOB NOT NULL,
    size        INTEGER,
    first_seen  INTEGER NOT NULL,
    vanished_at INTEGER NOT NULL,
    deadline    INTEGER,
    device      TEXT,
    officer     TEXT,
    seq         INTEGER,
    name_start  INTEGER
) STRICT;
CREATE INDEX vanished_first_seen ON vanished(first_seen);

-- The identity (device, inode) of each station's folder when it was last
-- listed: a different one means the dock was replaced or unmounted.
ALTER TABLE stations ADD COLUMN root_dev INTEGER;
ALTER TABLE stations ADD COLUMN root_ino INTEGER;

-- A dock deletion that could not be done yet (delete mode): retried later.
ALTER TABLE sightings ADD COLUMN dispose_error TEXT;
ALTER TABLE sightings ADD COLUMN dispose_retry_at INTEGER;

-- Retention counts from the later of the recording start and first seen
-- (a camera clock that is wrong but plausible cannot shorten a life).
ALTER TABLE originals ADD COLUMN retain_from INTEGER
    GENERATED ALWAYS AS (max(coalesce(recorded_start, name_start, first_seen), first_seen)) VIRTUAL;
CREATE INDEX originals_retain_from ON originals(retain_from, id) WHERE trashed_at IS NULL AND purged_at IS NULL;

-- An export whose contents were purged can no longer be downloaded.
ALTER TABLE exports ADD COLUMN voided_at INTEGER;
ALTER TABLE exports ADD COLUMN void_reason TEXT;

-- The audit log is paged by id (its chain order), filtered by media, case,
-- actor or action: one index each that serves both.
CREATE INDEX audit_media_id ON audit(media_id, id) WHERE media_id IS NOT NULL;
CREATE INDEX audit_case_id ON audit(case_id, id) WHERE case_id IS NOT NULL;
CREATE INDEX audit_actor_id ON audit(actor, id);
CREATE INDEX audit_action_id ON audit(action, id);
