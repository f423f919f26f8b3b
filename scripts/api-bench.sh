#!/bin/bash
# API latency under load with a large index: 1,000,000 originals and
# 100,000 cases (generated straight into SQLite after bodycamd created the
# schema), then wrk from loopback against
#   1. GET /api/v1/cases/{random case}/media
#   2. GET /api/v1/media?officer={random}&from=…&to=… (one day)
# Prints p50 and p99. Every request is authenticated and audited, as in
# production. Then the console: every screen (and one recording's and one
# case's page) through wrk with a logged-in session, p50 and p99 each. Usage: scripts/api-bench.sh [ORIGINALS] [CASES] [SECONDS]
# ENGINE=postgres: the same data in a PostgreSQL index (a fresh database
# on 127.0.0.1:5432, dropped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
CASES=${2:-100000}
SECS=${3:-20}
BIN=$PWD/target/release/bodycamd
cargo build --release -q
WORK=${BENCH_DIR:-$(mktemp -d /var/tmp/bodycamd-apibench-XXXXXX)}
mkdir -p "$WORK"
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; [ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT

TOKEN=bench-token
ENGINE=${ENGINE:-sqlite}
INDEX=""
if [ "$ENGINE" = postgres ]; then
    PGDB=bodycamd_apibench_$$
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $PGDB" postgres
    trap '[ -n "$PID" ] && kill $PID 2>/dev/null; sleep 1; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" postgres; [ -n "${BENCH_DIR:-}" ] || rm -rf "$WORK"' EXIT
    INDEX="[index]
url = \"postgres://postgres@127.0.0.1:5432/$PGDB\"
[archive]
shared = true"
fi
cat > "$WORK/bodycamd.toml" <<TOML
state_dir = "$WORK/state"
$INDEX
# The generated originals are index rows without bytes: nothing to render.
[renditions]
enabled = false
[api]
listen = "127.0.0.1:0"
[[api.tokens]]
name = "bench"
role = "case_system"
token_sha256 = "$(printf %s $TOKEN | sha256sum | cut -d' ' -f1)"
TOML
DB=$WORK/state/index.sqlite3
if [ "$ENGINE" = postgres ]; then
"$BIN" run --once --config "$WORK/bodycamd.toml" >/dev/null 2>&1
BASE=1764115200000
T0=$(date +%s)
psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$PGDB" <<SQL
SET synchronous_commit = off;
INSERT INTO stations (id, path, updated_at) VALUES ('bench', '/nonexistent', $BASE);
INSERT INTO officers SELECT lpad(i::text, 6, '0'), $BASE, $BASE FROM generate_series(0, 4999) i;
INSERT INTO devices SELECT 'CAM' || lpad(i::text, 5, '0'), $BASE, $BASE FROM generate_series(0, 4999) i;
INSERT INTO originals (id, size, station, device, officer, seq, name_start, first_seen, ingested_at, kind,
    container, video_codec, audio_codec, width, height, duration_secs, recorded_start, recorded_end,
    start_source, clock_trusted, described_at, deadline, on_time)
SELECT lpad(to_hex(i), 64, '0'), 50000000 + i, 'bench', 'CAM' || lpad((i % 5000)::text, 5, '0'), lpad((i % 5000)::text, 6, '0'), i / 5000,
    $BASE + i * 30000::bigint, $BASE + i * 30000::bigint + 600000, $BASE + i * 30000::bigint + 700000, 'video',
    'mov,mp4,m4a,3gp,3g2,mj2', 'h264', 'aac', 1920, 1080, 300.0, $BASE + i * 30000::bigint, $BASE + i * 30000::bigint + 300000,
    'file_name', 1, $BASE + i * 30000::bigint + 700000, $BASE + i * 30000::bigint + 300000 + 86400000, 1
FROM generate_series(0, $N - 1) i;
INSERT INTO sightings (media_id, station, rel_path, size, mtime_ns, ctime_ns, ino, dev, first_seen, ingested_at, disposition)
SELECT id, 'bench', convert_to(device || '/' || device || '_' || officer || '_' || seq || '.mp4', 'UTF8'), size, 0, 0,
    row_number() OVER (), 1, first_seen, ingested_at, 'keep' FROM originals;
INSERT INTO cases (id, title, status, buffer_minutes, created_at, updated_at, updated_by)
SELECT 'C-' || lpad(j::text, 6, '0'), 'bench case', 'open', 5, $BASE, $BASE, 'bench' FROM generate_series(0, $CASES - 1) j;
INSERT INTO case_officers SELECT id, lpad(((substr(id, 3)::int * 10) % 5000)::text, 6, '0') FROM cases;
INSERT INTO case_officers SELECT id, lpad(((substr(id, 3)::int * 10 + 1) % 5000)::text, 6, '0') FROM cases;
INSERT INTO case_windows (case_id, start, "end")
SELECT id, $BASE + substr(id, 3)::bigint * 10 * 30000, $BASE + substr(id, 3)::bigint * 10 * 30000 + 12 * 3600000 FROM cases;
INSERT INTO case_links (case_id, media_id, how, state, linked_by, linked_at)
SELECT w.case_id, o.id, 'rule', 'linked', 'bench', $BASE FROM case_windows w
JOIN case_officers co ON co.case_id = w.case_id
JOIN originals o ON o.officer = co.officer AND o.start_at BETWEEN w.start - 300000 AND w."end" + 300000
ON CONFLICT DO NOTHING;
VACUUM ANALYZE;
-- Write the bulk load out now, not in a checkpoint during the measurement.
CHECKPOINT;
SQL
echo "generated $N originals and $CASES cases in PostgreSQL in $(( $(date +%s) - T0 )) s;" \
    "$(psql -At -h 127.0.0.1 -U postgres -c 'SELECT count(*) FROM case_links' "$PGDB") links"
elif [ ! -e "$DB" ]; then
# Create and migrate the index (no stations: nothing to ingest).
"$BIN" run --once --config "$WORK/bodycamd.toml" >/dev/null 2>&1
BASE=1764115200000   # 2025-11-26T00:00:00Z; one recording every 30 s, 5000 officers
T0=$(date +%s)
sqlite3 "$DB" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
INSERT INTO stations (id, path, updated_at) VALUES ('bench', '/nonexistent', $BASE);
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 4999)
INSERT INTO officers SELECT printf('%06d', i), $BASE, $BASE FROM s;
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 4999)
INSERT INTO devices SELECT printf('CAM%05d', i), $BASE, $BASE FROM s;
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $N - 1)
INSERT INTO originals (id, size, station, device, officer, seq, name_start, first_seen, ingested_at, kind,
    container, video_codec, audio_codec, width, height, duration_secs, recorded_start, recorded_end,
    start_source, clock_trusted, described_at, deadline, on_time)
SELECT printf('%064x', i), 50000000 + i, 'bench', printf('CAM%05d', i % 5000), printf('%06d', i % 5000), i / 5000,
    $BASE + i * 30000, $BASE + i * 30000 + 600000, $BASE + i * 30000 + 700000, 'video',
    'mov,mp4,m4a,3gp,3g2,mj2', 'h264', 'aac', 1920, 1080, 300.0, $BASE + i * 30000, $BASE + i * 30000 + 300000,
    'file_name', 1, $BASE + i * 30000 + 700000, $BASE + i * 30000 + 300000 + 86400000, 1
FROM s;
INSERT INTO sightings (media_id, station, rel_path, size, mtime_ns, ctime_ns, ino, dev, first_seen, ingested_at, disposition)
SELECT id, 'bench', CAST(device || '/' || device || '_' || officer || '_' || seq || '.mp4' AS BLOB), size, 0, 0, rowid, 1,
    first_seen, ingested_at, 'keep' FROM originals;
-- Cases: two officers each, a 12-hour window around recording k = 10 j.
WITH RECURSIVE s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s WHERE j < $CASES - 1)
INSERT INTO cases (id, title, status, buffer_minutes, created_at, updated_at, updated_by)
SELECT printf('C-%06d', j), 'bench case', 'open', 5, $BASE, $BASE, 'bench' FROM s;
INSERT INTO case_officers SELECT id, printf('%06d', (CAST(substr(id, 3) AS INTEGER) * 10) % 5000) FROM cases;
INSERT INTO case_officers SELECT id, printf('%06d', (CAST(substr(id, 3) AS INTEGER) * 10 + 1) % 5000) FROM cases;
INSERT INTO case_windows (case_id, start, "end")
SELECT id, $BASE + CAST(substr(id, 3) AS INTEGER) * 10 * 30000, $BASE + CAST(substr(id, 3) AS INTEGER) * 10 * 30000 + 12 * 3600000 FROM cases;
INSERT OR IGNORE INTO case_links (case_id, media_id, how, state, linked_by, linked_at)
SELECT w.case_id, o.id, 'rule', 'linked', 'bench', $BASE FROM case_windows w
JOIN case_officers co ON co.case_id = w.case_id
JOIN originals o ON o.officer = co.officer AND o.start_at BETWEEN w.start - 300000 AND w."end" + 300000;
ANALYZE;
SQL
echo "generated $N originals and $CASES cases in $(( $(date +%s) - T0 )) s;" \
    "$(sqlite3 "$DB" 'SELECT count(*) FROM case_links') links, $(du -sh "$DB" | cut -f1) index"
fi

# A production index is hot in the page cache; so is this one.
[ "$ENGINE" = postgres ] || cat "$DB" > /dev/null
"$BIN" run --config "$WORK/bodycamd.toml" --log-format text 2>"$WORK/daemon.log" &
PID=$!
ADDR=""
for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/.*api listening addr=\([0-9.:]*\).*/\1/p' "$WORK/daemon.log" | head -1)
    [ -n "$ADDR" ] && break
    sleep 0.1
done
curl -fsS -H "Authorization: Bearer $TOKEN" "http://$ADDR/api/v1/cases/C-000042/media" | head -c 300; echo

cat > "$WORK/cases.lua" <<LUA
math.randomseed(42)
request = function()
  local path = string.format("/api/v1/cases/C-%06d/media", math.random(0, $CASES - 1))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $TOKEN" })
end
LUA
cat > "$WORK/officer.lua" <<LUA
math.randomseed(7)
request = function()
  local day = math.random(0, 340)
  local from = os.date("!%Y-%m-%dT00:00:00Z", 1764115200 + day * 86400)
  local to = os.date("!%Y-%m-%dT00:00:00Z", 1764115200 + (day + 1) * 86400)
  local path = string.format("/api/v1/media?officer=%06d&from=%s&to=%s&limit=100", math.random(0, 4999), from, to)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $TOKEN" })
end
LUA
# Warm up (page cache, statement caches), then measure.
wrk -t2 -c8 -d10s -s "$WORK/cases.lua" "http://$ADDR" >/dev/null
wrk -t2 -c8 -d10s -s "$WORK/officer.lua" "http://$ADDR" >/dev/null
for what in cases officer; do
    echo "== $ENGINE, $what: wrk -t2 -c8 -d${SECS}s --latency"
    wrk -t2 -c8 -d"${SECS}s" --latency -s "$WORK/$what.lua" "http://$ADDR" | grep -E "Latency|50%|75%|90%|99%|Requests/sec|Non-2xx|Socket errors"
done

# The console, on the same data: each screen with a logged-in session (an
# administrator; an auditor for the audit screen). Every page view is
# audited, as in production.
PW="console bench password"
printf '%s\n' "$PW" | "$BIN" user add bench-admin --role admin --password-stdin --config "$WORK/bodycamd.toml" >/dev/null 2>&1 || true
printf '%s\n' "$PW" | "$BIN" user add bench-audit --role auditor --password-stdin --config "$WORK/bodycamd.toml" >/dev/null 2>&1 || true
login() {
    local jar="$WORK/jar-$1"
    rm -f "$jar"
    curl -fsS -c "$jar" -b "$jar" "http://$ADDR/console/login" >/dev/null
    local tok
    tok=$(awk '$6 == "bodycamd_login" { print $7 }' "$jar")
    curl -sS -c "$jar" -b "$jar" -o /dev/null --data-urlencode "username=$1" --data-urlencode "password=$PW" \
        --data-urlencode "login=$tok" "http://$ADDR/console/login"
    awk '$6 == "bodycamd_session" { print $7 }' "$jar"
}
ADMIN=$(login bench-admin)
AUDIT=$(login bench-audit)
[ -n "$ADMIN" ] && [ -n "$AUDIT" ] || { echo "console login failed" >&2; exit 1; }
page_script() { # name cookie lua-expression-for-the-path
    cat > "$WORK/page-$1.lua" <<LUA
math.randomseed(11)
request = function()
  local path = $3
  return wrk.format("GET", path, { ["Cookie"] = "bodycamd_session=$2" })
end
LUA
}
page_script stations "$ADMIN" '"/console/stations"'
page_script board "$ADMIN" '"/console/board"'
page_script alerts "$ADMIN" '"/console/alerts?state=all"'
page_script problems "$ADMIN" '"/console/problems"'
page_script compliance "$ADMIN" '"/console/compliance?from=2026-06-01&to=2026-06-08&by=officer"'
page_script media "$ADMIN" '"/console/media"'
page_script media_officer "$ADMIN" 'string.format("/console/media?officer=%06d&from=2026-03-01", math.random(0, 4999))'
page_script media_one "$ADMIN" 'string.format("/console/media/%064x", math.random(0, '"$N"' - 1))'
page_script cases "$ADMIN" '"/console/cases"'
page_script case_one "$ADMIN" 'string.format("/console/cases/C-%06d", math.random(0, '"$CASES"' - 1))'
page_script retention "$ADMIN" '"/console/retention"'
page_script exports "$ADMIN" '"/console/exports"'
page_script renditions "$ADMIN" '"/console/renditions"'
page_script audit "$AUDIT" '"/console/audit"'
page_script audit_actor "$AUDIT" '"/console/audit?actor=bench"'
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: bodycamd_session=$ADMIN" "http://$ADDR/console/media/$(printf '%064x' 42)")
[ "$code" = 200 ] || { echo "console page answered $code" >&2; exit 1; }
echo "== $ENGINE, console pages: wrk -t1 -c2 -d${CONSOLE_SECS:-5}s --latency (p50, p99, requests/s)"
for page in stations board alerts problems compliance media media_officer media_one cases case_one retention exports \
    renditions audit audit_actor; do
    out=$(wrk -t1 -c2 -d"${CONSOLE_SECS:-5}s" --latency -s "$WORK/page-$page.lua" "http://$ADDR")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$page: some answers were not 2xx" >&2
        echo "$out" >&2
        exit 1
    fi
    printf '  %-14s p50 %9s  p99 %9s  %8s req/s\n' "$page" \
        "$(echo "$out" | awk '$1 == "50%" { print $2 }')" "$(echo "$out" | awk '$1 == "99%" { print $2 }')" \
        "$(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
done
