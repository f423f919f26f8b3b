#!/bin/sh
# Property-based fuzzing of the HTTP API against its own OpenAPI document:
# schemathesis (from PyPI) drives a live daemon with every role's token and
# fails on any 5xx answer. Run by `make test`.
set -eu
cd "$(dirname "$0")/.."

VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi
cargo build -q
BIN=$PWD/target/debug/bodycamd

WORK=$(mktemp -d /tmp/bodycamd-fuzz-XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

"$BIN" simulate --out "$WORK/dock" --cameras 2 --clips 2 --photos 1 --recorders 0 --corrupt \
    --start 2026-11-26T01:30:00Z >/dev/null 2>&1
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat > "$WORK/bodycamd.toml" <<TOML
state_dir = "$WORK/state"
[api]
listen = "127.0.0.1:0"
[[api.tokens]]
name = "cms"
role = "case_system"
token_sha256 = "$(sha fuzz-cms)"
[[api.tokens]]
name = "ops"
role = "admin"
token_sha256 = "$(sha fuzz-ops)"
[[api.tokens]]
name = "auditor"
role = "auditor"
token_sha256 = "$(sha fuzz-audit)"
[[api.tokens]]
name = "boss"
role = "approver"
token_sha256 = "$(sha fuzz-boss)"
[[stations]]
id = "dock-01"
path = "$WORK/dock"
settle_secs = 0.2
TOML
"$BIN" run --config "$WORK/bodycamd.toml" --log-format text 2>"$WORK/daemon.log" &
PID=$!
ADDR=""
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/.*api listening addr=\([0-9.:]*\).*/\1/p' "$WORK/daemon.log" | head -1)
    [ -n "$ADDR" ] && break
    sleep 0.1
done
[ -n "$ADDR" ] || { cat "$WORK/daemon.log"; echo "the daemon did not start" >&2; exit 1; }
# A case, so that case routes have data to find.
curl -fsS -X PUT -H "Authorization: Bearer fuzz-cms" -H 'Content-Type: application/json' \
    "http://$ADDR/api/v1/cases/2026-0457" \
    -d '{"officers":["004711"],"windows":[{"start":"2026-11-26T01:00:00Z","end":"2026-11-26T03:00:00Z"}]}' >/dev/null

EXAMPLES=${FUZZ_EXAMPLES:-40}
shift_run() { token=$1; shift; "$VENV/bin/schemathesis" run "http://$ADDR/api/v1/openapi.json" \
    --checks not_a_server_error -H "Authorization: Bearer $token" -n "$EXAMPLES" "$@"; }
shift_run fuzz-cms --include-tag cases --include-tag media
shift_run fuzz-ops --include-tag admin
shift_run fuzz-audit --include-tag audit
# Custody routes serve several roles: each token in turn (403s are fine,
# 5xx are not).
shift_run fuzz-cms --include-tag custody
shift_run fuzz-ops --include-tag custody
shift_run fuzz-boss --include-tag custody
# No request may have crashed or failed inside the daemon.
if grep -E "panicked|ERROR" "$WORK/daemon.log"; then
    echo "the daemon logged errors while being fuzzed" >&2
    exit 1
fi
echo "api-fuzz: no server errors"
