-- The ingest spine: stations, originals and where they were seen.
-- Instants are INTEGER milliseconds since the Unix epoch (UTC).
-- Dock paths are BLOBs: Linux names are bytes and must round-trip exactly.

CREATE TABLE stations (
    id                TEXT PRIMARY KEY,
    path              TEXT NOT NULL,
    available         INTEGER NOT NULL DEFAULT 1,
    unavailable_since INTEGER,
    last_error        TEXT,
    last_scan_at      INTEGER,
    watch_mode        TEXT,
    pending_files     INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
    serial     TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) STRICT;

CREATE TABLE officers (
    number     TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) STRICT;

CREATE TABLE originals (
    id             TEXT PRIMARY KEY,          -- BLAKE3 of the bytes, 64 hex
    size           INTEGER NOT NULL,
    station        TEXT NOT NULL REFERENCES stations(id),  -- of the first sighting
    device         TEXT REFERENCES devices(serial),
    officer        TEXT REFERENCES officers(number),
    seq            INTEGER,
    case_ref       TEXT,
    name_start     INTEGER,                   -- start time read from the file name
    name_error     TEXT,                      -- why a start in the name was unreadable
    source_mtime   INTEGER,                   -- the dock file's mtime when stored
    first_seen     INTEGER NOT NULL,          -- when a station first showed it
    ingested_at    INTEGER NOT NULL,          -- when stored and indexed
    -- Filled in by the describer (NULL until then).
    kind           TEXT CHECK (kind IN ('video', 'audio', 'photo', 'other')),
    container      TEXT,
    video_codec    TEXT,
    audio_codec    TEXT,
    width          INTEGER,
    height         INTEGER,
    frame_rate     REAL,
    duration_secs  REAL,
    creation_time  INTEGER,                   -- container creation_time / EXIF time
    recorded_start INTEGER,
    recorded_end   INTEGER,
    start_source   TEXT,
    clock_trusted  INTEGER,
    probe_error    TEXT,
    described_at   INTEGER
) STRICT;

CREATE INDEX originals_device_start  ON originals(device, recorded_start);
CREATE INDEX originals_officer_start ON originals(officer, recorded_start);
CREATE INDEX originals_start         ON originals(recorded_start);
CREATE INDEX originals_ingested      ON originals(ingested_at);
CREATE INDEX originals_undescribed   ON originals(ingested_at) WHERE described_at IS NULL;

CREATE TABLE sightings (
    id          INTEGER PRIMARY KEY,
    media_id    TEXT NOT NULL REFERENCES originals(id),
    station     TEXT NOT NULL REFERENCES stations(id),
    rel_path    BLOB NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    ctime_ns    INTEGER NOT NULL,
    ino         INTEGER NOT NULL,
    dev         INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    ingested_at INTEGER NOT NULL,
    -- keep: left on the dock; delete_pending: to be removed once verified;
    -- deleted: removed from the dock after verification.
    disposition TEXT NOT NULL CHECK (disposition IN ('keep', 'delete_pending', 'deleted')),
    disposed_at INTEGER,
    UNIQUE (media_id, station, rel_path)
) STRICT;

CREATE INDEX sightings_station_path ON sightings(station, rel_path);
CREATE INDEX sightings_delete_pending ON sightings(station) WHERE disposition = 'delete_pending';

-- Files seen on a station and not stored yet, kept so that first_seen
-- survives a restart and `status` can show what waits and what failed.
CREATE TABLE pending (
    station    TEXT NOT NULL REFERENCES stations(id),
    rel_path   BLOB NOT NULL,
    first_seen INTEGER NOT NULL,
    size       INTEGER,
    -- waiting: settling or queued; retrying: failed, will retry;
    -- failed: attempts exhausted; rejected: never taken (symlink, fifo…).
    state      TEXT NOT NULL CHECK (state IN ('waiting', 'retrying', 'failed', 'rejected')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    reason     TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (station, rel_path)
) STRICT, WITHOUT ROWID;
