#!/bin/sh
# Property-based fuzzing of the HTTP API against its own OpenAPI document.
# Every operation is driven by schemathesis (from PyPI, pinned, fixed seed)
# with a token whose role may use it (the document's `x-roles`), through the
# examples, coverage, fuzzing and stateful (links) phases, and fails on a
# 5xx, a status code the document does not list, a content type it does not
# list, or a body that does not match the response schema. Before that,
# scripts/api-roles.py checks that every other role gets 403 and no token
# 401. Run by `make test`.
set -eu
cd "$(dirname "$0")/.."

VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    # Pinned, with a fixed seed below: the same examples in every run, so a
    # failure in CI is one that reproduces here.
    "$VENV/bin/pip" install -q --disable-pip-version-check 'schemathesis==4.32.5'
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

# Each role's operations come from the document itself (`x-roles`); one
# token per role: schemathesis drives every operation with a token whose role
# may use it, and every other role must get 403 (and no token, 401).
DOC=$WORK/openapi.json
curl -fsS "http://$ADDR/api/v1/openapi.json" -o "$DOC"
python3 scripts/api-roles.py check "$DOC" "http://$ADDR" \
    case_system=fuzz-cms admin=fuzz-ops auditor=fuzz-audit approver=fuzz-boss

EXAMPLES=${FUZZ_EXAMPLES:-40}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
for pair in case_system=fuzz-cms admin=fuzz-ops auditor=fuzz-audit approver=fuzz-boss; do
    role=${pair%%=*}; token=${pair#*=}
    ops=$(python3 scripts/api-roles.py ops "$DOC" "$role")
    echo "== $role: $(echo $ops | wc -w) operations" >&2
    # shellcheck disable=SC2086
    "$VENV/bin/schemathesis" run "$DOC" --url "http://$ADDR" --checks "$CHECKS" \
        -H "Authorization: Bearer $token" -n "$EXAMPLES" --phases examples,coverage,fuzzing,stateful \
        --seed "${FUZZ_SEED:-20261130}" \
        $(for o in $ops; do printf -- '--include-operation-id %s ' "$o"; done)
done
# No request may have crashed or failed inside the daemon.
if grep -E "panicked|ERROR" "$WORK/daemon.log"; then
    echo "the daemon logged errors while being fuzzed" >&2
    exit 1
fi
echo "api-fuzz: no server errors"
