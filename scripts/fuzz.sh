#!/bin/sh
# Coverage-blind mutational fuzzing on the stable toolchain (tests/fuzz.rs),
# FUZZ_SECS per target (default 60): every libFuzzer target's entry point,
# and the media prober on arbitrary bytes through its child processes (which
# libFuzzer cannot drive). Failing inputs are kept in
# fuzz/regressions/<target>/ and replayed by every `cargo test`. The
# coverage-guided runs are scripts/cargo-fuzz.sh; `make fuzz` runs both.
set -eu
cd "$(dirname "$0")/.."
FUZZ_SECS=${FUZZ_SECS:-60} exec cargo test --test fuzz -- --nocapture --test-threads 1
