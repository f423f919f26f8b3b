-- Many hosts, one index (PostgreSQL), kept in the embedded schema too so
-- that every statement is the same on both engines.

-- Hosts: each runs its own stations; the outages it meets.
CREATE TABLE hosts (
    id         TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    faults     TEXT NOT NULL DEFAULT '[]'
) STRICT;

-- The host that runs a station.
ALTER TABLE stations ADD COLUMN host TEXT;

-- Which host runs a rendition job, and when it last said so.
ALTER TABLE rendition_jobs ADD COLUMN owner TEXT;
ALTER TABLE rendition_jobs ADD COLUMN heartbeat INTEGER;
