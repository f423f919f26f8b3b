-- Playable renditions and thumbnails: derived copies, never originals.

CREATE TABLE renditions (
    original_id   TEXT NOT NULL REFERENCES originals(id),
    id            TEXT NOT NULL,        -- BLAKE3 of the rendition's bytes (identical
                                        -- renditions of different originals share it)
    kind          TEXT NOT NULL CHECK (kind IN ('playable', 'thumbnail')),
    method        TEXT NOT NULL CHECK (method IN ('remux', 'transcode', 'image')),
    mime          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    settings      TEXT NOT NULL,        -- JSON: what was asked of the encoder
    encoder       TEXT NOT NULL,        -- libavcodec version and encoders used
    duration_secs REAL,
    width         INTEGER,
    height        INTEGER,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (original_id, kind)
) STRICT, WITHOUT ROWID;
CREATE INDEX renditions_by_hash ON renditions(id);

-- The work queue, kept across restarts. A job left `running` by a crash
-- is queued again at start.
CREATE TABLE rendition_jobs (
    original_id TEXT NOT NULL REFERENCES originals(id),
    kind        TEXT NOT NULL CHECK (kind IN ('playable', 'thumbnail')),
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'skipped')),
    plan        TEXT NOT NULL,          -- JSON: how it is to be made
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try    INTEGER NOT NULL,
    last_error  TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (original_id, kind)
) STRICT, WITHOUT ROWID;
CREATE INDEX rendition_jobs_due ON rendition_jobs(next_try) WHERE state = 'queued';
-- Outstanding work (queued or running), counted at every status update.
CREATE INDEX rendition_jobs_open ON rendition_jobs(state) WHERE state IN ('queued', 'running');
