-- Compliance over a period counts the recordings not assessed yet (not
-- described): few at any time, so a partial index answers the count without
-- reading the period's rows.
CREATE INDEX originals_unassessed ON originals(start_at) WHERE on_time IS NULL;
