#!/bin/sh
# Leadership handover in a district: two hosts (one PostgreSQL database,
# one moto bucket); kill -9 of the leader, then the time until the other
# host holds the lock and until its first alert evaluation has opened an
# overdue alert. Runs the multi-host test ROUNDS times (default 5).
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
./scripts/pg-up.sh
i=1
while [ "$i" -le "$ROUNDS" ]; do
    cargo test -q --test district -- --nocapture 2>&1 | grep "leadership handover"
    i=$((i + 1))
done
