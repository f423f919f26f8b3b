-- Compliance over a period counts the recordings not assessed yet (not
-- described): few at any time, so a partial index answers the count without
-- reading the period's rows.
CREATE INDEX originals_unassessed ON originals(start_at) WHERE on_time IS NULL;
-- Recordings with a trusted clock are placed by their start: the report
-- reads every column it needs from this index (an index-only scan), not
-- from the table. It replaces the plain index on recorded_start, which only
-- this report used.
DROP INDEX originals_start;
CREATE INDEX originals_compliance ON originals(recorded_start)
    INCLUDE (on_time, late, officer, device, station, recorded_end, ingested_at, clock_trusted) WHERE clock_trusted = 1;
