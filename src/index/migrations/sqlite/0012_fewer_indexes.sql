-- Indexes no query uses any more (issue 14): every stored file paid for
-- them on insert and again when its description moved `recorded_start`.
-- Recordings of a device or officer are read in `start_at` order
-- (originals_*_start_at); the audit log is searched by id within a media,
-- case or actor (audit_*_id), never ordered by `at` within them.
DROP INDEX originals_device_start;
DROP INDEX originals_officer_start;
DROP INDEX audit_media;
DROP INDEX audit_case;
DROP INDEX audit_actor;
