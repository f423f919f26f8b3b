#!/bin/sh
# Run the benchmarks (see scripts/bench.py for what each measures).
set -eu
cd "$(dirname "$0")/.."
exec python3 scripts/bench.py --bin target/release/bodycamd "$@"
