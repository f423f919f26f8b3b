-- Compliance over a period counts the recordings not assessed yet (not
-- described): few at any time, so a partial index answers the count without
-- reading the period's rows.
CREATE INDEX originals_unassessed ON originals(start_at) WHERE on_time IS NULL;
-- Recordings with a trusted clock are placed by their start: the report
-- reads every column it needs from this index, not from the table (a week
-- of a busy district is tens of thousands of rows). It replaces the plain
-- index on recorded_start, which only this report used. (clock_trusted is
-- in it too: SQLite reads the column to check the partial index's term.)
DROP INDEX originals_start;
CREATE INDEX originals_compliance
    ON originals(recorded_start, on_time, late, officer, device, station, recorded_end, ingested_at, clock_trusted)
    WHERE clock_trusted = 1;
