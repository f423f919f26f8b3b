#!/bin/sh
# Coverage-guided fuzzing (libFuzzer through `cargo fuzz`) of every target in
# fuzz/ (or those named), FUZZ_SECS each (default 60). Each target starts
# from its committed seeds (fuzz/seeds/<target>/) and the regression inputs
# (fuzz/regressions/<target>/), and grows a corpus in fuzz/corpus/<target>/
# (not committed). Prints, per target, the executions per second and the
# coverage (edges) reached. A crash is copied to fuzz/regressions/<target>/
# (replayed by every `cargo test`, tests/fuzz.rs) and fails the run.
#
# The stable toolchain builds the targets: RUSTC_BOOTSTRAP=1 lets it accept
# the one -Z flag cargo fuzz passes, and --sanitizer none needs no sanitizer
# runtime (the code is memory-safe Rust; the fuzzer looks for panics,
# overflows (debug assertions are on) and hangs).
set -eu
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECS:-60}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
TARGETS=${*:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^bodycamd-fuzz$')}
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
# Every target at once (instrumented, like all of bodycamd's dependencies).
if ! cargo fuzz build --sanitizer none --fuzz-dir fuzz >"$LOGS/build.log" 2>&1; then
    grep -v '^\s*Compiling' "$LOGS/build.log" >&2
    exit 1
fi
failed=""
printf '%-16s %12s %10s %8s %8s\n' target executions "exec/s" edges features
for t in $TARGETS; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t" "fuzz/artifacts/$t"
    if cargo fuzz run --sanitizer none --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$LOGS/$t.log" 2>&1; then
        ok=1
    else
        ok=0
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$LOGS/$t.log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$LOGS/$t.log" | tail -1 | cut -d' ' -f2)
    printf '%-16s %12s %10s %8s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}"
    if [ "$ok" = 0 ]; then
        failed="$failed $t"
        for a in fuzz/artifacts/"$t"/*; do
            [ -f "$a" ] || continue
            cp "$a" "fuzz/regressions/$t/"
            echo "  kept $(basename "$a") in fuzz/regressions/$t/" >&2
        done
        grep -A30 -m1 -E "panicked|ERROR: libFuzzer|SUMMARY" "$LOGS/$t.log" >&2 || tail -40 "$LOGS/$t.log" >&2
    fi
done
if [ -n "$failed" ]; then
    echo "cargo-fuzz: failures in:$failed (inputs kept in fuzz/regressions/; fix, then commit them)" >&2
    exit 1
fi
