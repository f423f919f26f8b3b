-- Evidence custody: a hash-chained audit log, retention, restricted
-- records and approved exports.

-- Each entry carries the BLAKE3 of the previous entry's hash and its own
-- canonical encoding (see index/audit.rs). Rows written before this
-- migration are chained at the first start after it.
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;
CREATE TRIGGER audit_append_only_update BEFORE UPDATE OF id, at, actor, role, remote, action, method, route, case_id,
    media_id, status, outcome, details, prev_hash ON audit WHEN old.hash IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Retention: why an original is kept, and where it is in its life.
ALTER TABLE originals ADD COLUMN important INTEGER NOT NULL DEFAULT 0;
ALTER TABLE originals ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE originals ADD COLUMN trashed_at INTEGER;   -- moved to the trash (recoverable)
ALTER TABLE originals ADD COLUMN purged_at INTEGER;    -- bytes deleted for good
CREATE INDEX originals_trashed ON originals(trashed_at) WHERE trashed_at IS NOT NULL;
CREATE INDEX originals_restricted ON originals(id) WHERE restricted = 1;
-- Retention counts from first seen when the clock cannot be trusted.
CREATE INDEX originals_untrusted_first_seen ON originals(first_seen) WHERE clock_trusted = 0;

CREATE TABLE holds (
    id         INTEGER PRIMARY KEY,
    media_id   TEXT NOT NULL REFERENCES originals(id),
    reason     TEXT NOT NULL,
    placed_by  TEXT NOT NULL,
    placed_at  INTEGER NOT NULL,
    lifted_by  TEXT,
    lifted_at  INTEGER
) STRICT;
CREATE INDEX holds_active ON holds(media_id) WHERE lifted_at IS NULL;

ALTER TABLE cases ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN archived_at INTEGER;     -- the case file was archived
ALTER TABLE cases ADD COLUMN archived_by TEXT;
CREATE INDEX cases_restricted ON cases(id) WHERE restricted = 1;

CREATE TABLE exports (
    id          TEXT PRIMARY KEY,
    case_id     TEXT,
    media       TEXT NOT NULL,      -- JSON array of media ids
    case_file   INTEGER NOT NULL DEFAULT 0,
    requester   TEXT NOT NULL,      -- the handler: the token that asked
    reviewer    TEXT,               -- named by the requester
    reason      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
    approver    TEXT,
    decision_note TEXT,
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER,
    expires_at  INTEGER
) STRICT;
