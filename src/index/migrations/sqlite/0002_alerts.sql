-- The 24-hour rule: deadlines, alerts and their delivery.

-- Estimated deadline of a file not stored yet (see rules::deadline).
ALTER TABLE pending ADD COLUMN deadline INTEGER;

-- How each original stands against the rule (set when described).
ALTER TABLE originals ADD COLUMN deadline INTEGER;
ALTER TABLE originals ADD COLUMN on_time INTEGER;
ALTER TABLE originals ADD COLUMN late TEXT CHECK (late IN ('late_docking', 'late_processing'));
CREATE INDEX originals_device_seq ON originals(device, seq) WHERE seq IS NOT NULL;

-- A station's watch is degraded (events lost, watches ran out) until then.
ALTER TABLE stations ADD COLUMN degraded TEXT;
ALTER TABLE stations ADD COLUMN degraded_until INTEGER;

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject      TEXT NOT NULL,
    opened_at    INTEGER NOT NULL,
    resolved_at  INTEGER,
    acked_by     TEXT,
    acked_at     INTEGER,
    ack_note     TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
) STRICT;
-- One open alert per kind and subject.
CREATE UNIQUE INDEX alerts_one_open ON alerts(kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_opened ON alerts(opened_at);

-- Every transition of an alert (history), with the exact JSON body that
-- webhooks receive (signed over these bytes).
CREATE TABLE alert_events (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    event    TEXT NOT NULL CHECK (event IN ('opened', 'resolved', 'acknowledged')),
    at       INTEGER NOT NULL,
    body     TEXT NOT NULL
) STRICT;
CREATE INDEX alert_events_alert ON alert_events(alert_id);

-- The webhook outbox: one row per event and webhook, delivered at least once.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    event_id     INTEGER NOT NULL REFERENCES alert_events(id),
    url          TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_try     INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error   TEXT,
    UNIQUE (event_id, url)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_try) WHERE delivered_at IS NULL;
