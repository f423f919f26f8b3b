#!/bin/sh
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the district
# half of the test suite. CI machines run one (trust auth, user postgres)
# but it may have stopped; start it with Debian's cluster tools if so.
# Without a server the PostgreSQL tests say they skipped, and CI fails
# (BODYCAMD_TEST_REQUIRE_PG=1) rather than pass on half the suite.
set -u
up() {
    python3 -c "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=1).close()" 2>/dev/null
}
if up; then
    exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>&1 || true
    done
fi
i=0
while [ $i -lt 30 ]; do
    up && exit 0
    sleep 1
    i=$((i + 1))
done
echo "pg-up: no PostgreSQL server answers on 127.0.0.1:5432" >&2
exit 1
