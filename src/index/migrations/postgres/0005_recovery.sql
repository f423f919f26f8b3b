-- Recovered renditions of cut-short recordings (issue 16): a recovery job
-- can wait for a reference recording; a rendition records its provenance.
ALTER TABLE rendition_jobs DROP CONSTRAINT rendition_jobs_state_check;
ALTER TABLE rendition_jobs ADD CONSTRAINT rendition_jobs_state_check
    CHECK (state IN ('queued', 'running', 'done', 'failed', 'skipped', 'waiting'));
CREATE INDEX rendition_jobs_waiting ON rendition_jobs(original_id) WHERE state = 'waiting';
ALTER TABLE renditions ADD COLUMN recovery TEXT;
