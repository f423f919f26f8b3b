-- Indexes no query uses any more (issue 14): every stored file paid for
-- them on insert and again when its description moved `recorded_start`.
-- Recordings of a device or officer are read in `start_at` order
-- (originals_*_start_at).
DROP INDEX originals_device_start;
DROP INDEX originals_officer_start;
