-- The console: people who log in as themselves, and their sessions.

-- A person (never a case system: those have tokens). The password is kept
-- only as an Argon2id hash (PHC string).
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'approver')),
    restricted    INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    disabled_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- A logged-in session: the cookie's SHA-256 (the cookie itself is never
-- stored), its CSRF token, when it was made and last used.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL,
    remote     TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions(user_name);
CREATE INDEX sessions_seen ON sessions(seen_at);

-- Paged lists of the console.
CREATE INDEX exports_created ON exports(created_at, id);
CREATE INDEX exports_pending ON exports(created_at, id) WHERE state = 'pending';
CREATE INDEX cases_updated ON cases(updated_at, id);
CREATE INDEX pending_deadline ON pending(deadline, station, rel_path);
CREATE INDEX rendition_jobs_failed ON rendition_jobs(updated_at, original_id) WHERE state = 'failed';
CREATE INDEX holds_active_placed ON holds(placed_at, id) WHERE lifted_at IS NULL;
-- Compliance over a period: originals without a known clock, by first sight
-- (trusted clocks use originals_start, untrusted ones
-- originals_untrusted_first_seen).
CREATE INDEX originals_unclocked_first_seen ON originals(first_seen) WHERE clock_trusted IS NULL;
