#!/bin/sh
# Fuzz every target for a bounded time (FUZZ_SECS each, default 60):
# the configuration parser, station name patterns and time parsing, the EXIF
# reader and sniffer, and the media prober on arbitrary bytes. Failing
# inputs are kept in tests/fuzz-regressions/<target>/ and replayed by every
# `cargo test`. `make test` runs this with a short budget.
set -eu
cd "$(dirname "$0")/.."
FUZZ_SECS=${FUZZ_SECS:-60} exec cargo test --test fuzz -- --nocapture --test-threads 1
