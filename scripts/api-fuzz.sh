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
# The binaries `cargo test` builds (with the dev-dependencies' features
# unified): after `make test`'s suite this builds nothing, where `cargo build`
# would compile a second set of every dependency whose features differ.
cargo test --no-run -q 2>/dev/null || cargo test --no-run
BIN=$PWD/target/debug/bodycamd

WORK=$(mktemp -d /tmp/bodycamd-fuzz-XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    if [ -n "${API_FUZZ_KEEP:-}" ]; then echo "api-fuzz: kept $WORK" >&2; else rm -rf "$WORK"; fi
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
restricted = true
[[api.tokens]]
name = "ops"
role = "admin"
token_sha256 = "$(sha fuzz-ops)"
restricted = true
[[api.tokens]]
name = "auditor"
role = "auditor"
token_sha256 = "$(sha fuzz-audit)"
restricted = true
[[api.tokens]]
name = "boss"
role = "approver"
token_sha256 = "$(sha fuzz-boss)"
restricted = true
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
URL=http://$ADDR/api/v1
api() { # METHOD PATH TOKEN [BODY]: the answer's body (fails on an error status)
    curl -fsS -X "$1" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' "$URL$2" ${4:+-d "$4"}
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The data operations need, so that they get past "no such id": the docked
# originals, a case with one linked by hand, a hold, an export awaiting
# approval, one approved (by another person than its requester) and one
# kept for `deny`, and the alerts the corrupt file raised.
for _ in $(seq 1 200); do
    n=$(api GET "/media?limit=1000" fuzz-cms | json "len(d['media'])")
    [ "$n" -ge 4 ] && break
    sleep 0.1
done
MEDIA=$(api GET "/media?limit=1000" fuzz-cms | json "' '.join(m['id'] for m in d['media'])")
FIRST=${MEDIA%% *}
api PUT /cases/2026-0457 fuzz-cms \
    '{"officers":["004711"],"windows":[{"start":"2026-11-26T01:00:00Z","end":"2026-11-26T03:00:00Z"}]}' >/dev/null
for m in $MEDIA; do
    api POST /cases/2026-0457/media fuzz-cms "{\"media_id\":\"$m\",\"note\":\"seed\"}" >/dev/null
done
# Renditions are made in the background: wait for them (up to 60 s), and
# give the rendition and thumbnail operations the originals that have one.
RENDERED=""
for _ in $(seq 1 600); do
    RENDERED=$(for m in $MEDIA; do
        curl -fsS -o /dev/null -H "Authorization: Bearer fuzz-cms" "$URL/media/$m/rendition" 2>/dev/null && echo "$m"
    done | tr '\n' ' ')
    [ "$(echo $RENDERED | wc -w)" -ge "$(($(echo $MEDIA | wc -w) - 1))" ] && break
    sleep 0.1
done
HOLD=$(api POST "/media/$FIRST/holds" fuzz-ops '{"reason":"api-fuzz seed"}' | json "d['hold_id']")
PENDING=$(api POST /exports fuzz-cms "{\"reason\":\"seed\",\"media\":[\"$FIRST\"]}" | json "d['id']")
APPROVED=$(api POST /exports fuzz-cms "{\"reason\":\"seed\",\"case_id\":\"2026-0457\"}" | json "d['id']")
UNDECIDED=$(api POST /exports fuzz-cms "{\"reason\":\"seed for deny\",\"media\":[\"$FIRST\"]}" | json "d['id']")
api POST "/exports/$APPROVED/approve" fuzz-boss '{"note":"seed"}' >/dev/null
api GET "/exports/$PENDING" fuzz-cms >/dev/null
api GET "/exports/$APPROVED/download" fuzz-cms >/dev/null
ALERTS=$(api GET "/alerts?state=all" fuzz-ops | json "' '.join(str(a['id']) for a in d)")
# The recording the simulator cut short (a dead battery), recovered once
# more by hand (200 only for an original that has something to recover),
# and the complete H.264/H.265 recordings of its camera that may be named
# as its reference: recoverMedia gets past 409 and 422 to its real work.
api GET "/media?limit=1000" fuzz-cms > "$WORK/media.json"
CUT=""
for m in $(json "' '.join(m['id'] for m in d['media'] if m['probe_error'])" < "$WORK/media.json"); do
    for _ in $(seq 1 100); do # 409 while its recovery runs: wait for it
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer fuzz-ops" \
            -H 'Content-Type: application/json' "$URL/media/$m/recover" -d '{"reason":"api-fuzz seed"}')
        [ "$code" = 200 ] && { CUT="$CUT $m"; break; }
        state=$(api GET "/media/$m/renditions" fuzz-cms |
            json "next((r['state'] for r in d['renditions'] if r['kind'] == 'playable'), 'none')")
        [ "$state" = running ] || [ "$state" = queued ] || break
        sleep 0.1
    done
done
[ -n "$CUT" ] || { echo "api-fuzz: the simulated dock has no recoverable recording" >&2; exit 1; }
REFERENCES=$(python3 -c "
import json, sys
media, cut = json.load(open(sys.argv[1]))['media'], sys.argv[2].split()
devices = {m['device'] for m in media if m['id'] in cut}
print(' '.join(m['id'] for m in media if m['device'] in devices and not m['probe_error']
               and m['video_codec'] in ('h264', 'hevc')))" "$WORK/media.json" "$CUT")
python3 - "$WORK/seeds.json" "$MEDIA" "$HOLD" "$PENDING $APPROVED" "$ALERTS" "$RENDERED" "$CUT" "$REFERENCES" \
    "$UNDECIDED" <<'PY'
import json, sys
out, media, hold, exports, alerts, rendered, cut, references, undecided = sys.argv[1:]
json.dump({"media": media.split(), "case": ["2026-0457"], "hold": [hold], "export": exports.split(),
           "alert": alerts.split(), "station": ["dock-01"], "rendered": rendered.split(),
           "cut": cut.split(), "reference": references.split(), "undecided": [undecided]}, open(out, "w"))
PY

# Each operation's roles come from the document itself (`x-roles`): every
# other role must get 403 (and no token, 401); schemathesis then drives
# every operation with a token whose role may use it (one run, so that the
# stateful phase follows links across roles: a case system's export to an
# approver's approval).
DOC=$WORK/openapi.json
curl -fsS "$URL/openapi.json" -o "$DOC"
TOKENS="case_system=fuzz-cms admin=fuzz-ops auditor=fuzz-audit approver=fuzz-boss"
# shellcheck disable=SC2086
python3 scripts/api-roles.py check "$DOC" "http://$ADDR" $TOKENS
# shellcheck disable=SC2086
python3 scripts/api-roles.py config "$DOC" "$WORK/seeds.json" $TOKENS > "$WORK/schemathesis.toml"

# A client generated from the document works: a case system's main flow
# through it (scripts/api-client.py), before the fuzzer changes the data.
CLIENT_VENV=target/openapi-client-venv
if [ ! -x "$CLIENT_VENV/bin/openapi-python-client" ]; then
    python3 -m venv "$CLIENT_VENV"
    "$CLIENT_VENV/bin/pip" install -q --disable-pip-version-check 'openapi-python-client==0.29.1'
fi
"$CLIENT_VENV/bin/openapi-python-client" generate --path "$DOC" --output-path "$WORK/client" --overwrite \
    >"$WORK/client.log" 2>&1 || { cat "$WORK/client.log" >&2; exit 1; }
if grep -q "Endpoint will not be generated" "$WORK/client.log"; then
    grep -B1 -A3 "Endpoint will not be generated" "$WORK/client.log" >&2
    echo "api-client: the generator dropped an operation" >&2
    exit 1
fi
"$CLIENT_VENV/bin/python" scripts/api-client.py "$WORK/client" "http://$ADDR" fuzz-cms

EXAMPLES=${FUZZ_EXAMPLES:-40}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
"$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$DOC" --url "http://$ADDR" \
    --checks "$CHECKS" -n "$EXAMPLES" --phases examples,coverage,fuzzing,stateful \
    --seed "${FUZZ_SEED:-20261130}"
# No request may have crashed or failed inside the daemon.
if grep -E "panicked|ERROR" "$WORK/daemon.log"; then
    echo "the daemon logged errors while being fuzzed" >&2
    exit 1
fi
echo "api-fuzz: no server errors"
