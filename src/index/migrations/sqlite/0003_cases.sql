-- Cases from case systems, their links to media, and the access audit.

-- When a recording started as far as it is known (for matching, queries
-- and their order): its resolved start, else the start in its name, else
-- when a station first showed it.
ALTER TABLE originals ADD COLUMN start_at INTEGER
    GENERATED ALWAYS AS (coalesce(recorded_start, name_start, first_seen)) VIRTUAL;
CREATE INDEX originals_start_at ON originals(start_at, id);
CREATE INDEX originals_officer_start_at ON originals(officer, start_at, id);
CREATE INDEX originals_device_start_at ON originals(device, start_at, id);
CREATE INDEX originals_station_start_at ON originals(station, start_at, id);

CREATE TABLE cases (
    id             TEXT PRIMARY KEY,          -- the case system's number
    title          TEXT,
    status         TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at      INTEGER,
    buffer_minutes INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    updated_by     TEXT NOT NULL
) STRICT;

CREATE TABLE case_officers (
    case_id TEXT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    officer TEXT NOT NULL,
    PRIMARY KEY (case_id, officer)
) STRICT, WITHOUT ROWID;
CREATE INDEX case_officers_officer ON case_officers(officer);

CREATE TABLE case_devices (
    case_id TEXT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    device  TEXT NOT NULL,
    PRIMARY KEY (case_id, device)
) STRICT, WITHOUT ROWID;
CREATE INDEX case_devices_device ON case_devices(device);

-- Time windows as the case system gave them (the buffer widens them when
-- matching).
CREATE TABLE case_windows (
    id      INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    start   INTEGER NOT NULL,
    "end"   INTEGER NOT NULL CHECK ("end" > start)
) STRICT;
CREATE INDEX case_windows_case ON case_windows(case_id);

-- A link between a case and an original: made by the rule or by hand. A
-- rule link removed by hand is kept as 'removed', so the rule never brings
-- it back.
CREATE TABLE case_links (
    case_id    TEXT NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    media_id   TEXT NOT NULL REFERENCES originals(id),
    how        TEXT NOT NULL CHECK (how IN ('rule', 'manual')),
    state      TEXT NOT NULL CHECK (state IN ('linked', 'removed')),
    linked_by  TEXT NOT NULL,
    linked_at  INTEGER NOT NULL,
    note       TEXT,
    removed_by TEXT,
    removed_at INTEGER,
    PRIMARY KEY (case_id, media_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX case_links_media ON case_links(media_id);

-- Who accessed or changed what, from where, with what outcome.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    role     TEXT,
    remote   TEXT,
    action   TEXT NOT NULL,
    method   TEXT,
    route    TEXT,
    case_id  TEXT,
    media_id TEXT,
    status   INTEGER,
    outcome  TEXT NOT NULL,
    details  TEXT
) STRICT;
CREATE INDEX audit_at ON audit(at, id);
CREATE INDEX audit_media ON audit(media_id, at) WHERE media_id IS NOT NULL;
CREATE INDEX audit_case ON audit(case_id, at) WHERE case_id IS NOT NULL;
CREATE INDEX audit_actor ON audit(actor, at);
