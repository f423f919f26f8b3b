#!/bin/sh
# Recovery speed (issue 16): a 1080p H.264/AAC recording cut at 1 GiB (no
# moov index), recovered with `bodycamd recover-file` and a 2-second
# reference of the same "camera", against remuxing the complete file with
# the ffmpeg CLI (`-c copy`) in the same run. Both read a warm page cache
# and are timed up to a `sync` (their output on disk), after a `sync` that
# leaves no earlier writes to flush.
#
#   scripts/bench-recovery.sh [BIN]      (BIN: target/release/bodycamd)
#
# The media are made once under $BENCH_DIR (default /var/tmp/recbench).
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-target/release/bodycamd}
DIR=${BENCH_DIR:-/var/tmp/recbench}
CUT_BYTES=${CUT_BYTES:-1073741824}
mkdir -p "$DIR"
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 2; }
camera() { # seconds picture out
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "$2=size=1920x1080:rate=30" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$1" -vf "noise=alls=12:allf=t" \
        -c:v libx264 -preset ultrafast -g 60 -bf 2 -pix_fmt yuv420p -c:a aac -b:a 128k "$3"
}
if [ ! -s "$DIR/complete.mp4" ]; then
    echo "making a 1080p recording of about 1.1 GiB (once)..."
    camera 95 testsrc2 "$DIR/complete.mp4.tmp.mp4" && mv "$DIR/complete.mp4.tmp.mp4" "$DIR/complete.mp4"
    camera 2 testsrc "$DIR/reference.mp4"
fi
size=$(stat -c %s "$DIR/complete.mp4")
[ "$size" -gt "$CUT_BYTES" ] || { echo "the recording ($size bytes) is not longer than the cut" >&2; exit 2; }
head -c "$CUT_BYTES" "$DIR/complete.mp4" > "$DIR/cut.mp4"
cat "$DIR/complete.mp4" "$DIR/cut.mp4" "$DIR/reference.mp4" > /dev/null
now() { date +%s.%N; }
rm -f "$DIR/remux.mp4" "$DIR/recovered.mp4"
sync
t0=$(now)
ffmpeg -hide_banner -loglevel error -y -i "$DIR/complete.mp4" -c copy "$DIR/remux.mp4"
sync
t1=$(now)
/usr/bin/time -f "%M" -o "$DIR/rss" "$BIN" recover-file --json --reference "$DIR/reference.mp4" "$DIR/cut.mp4" "$DIR/recovered.mp4" > "$DIR/recovery.json"
sync
t2=$(now)
python3 - "$DIR" "$size" "$CUT_BYTES" "$t0" "$t1" "$t2" <<'PY'
import json, sys
d, size, cut, t0, t1, t2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *map(float, sys.argv[4:7])
r = json.load(open(f"{d}/recovery.json"))
rss = int(open(f"{d}/rss").read().split()[-1])
remux, rec = t1 - t0, t2 - t1
mb = 1e6
print(f"ffmpeg -c copy + sync, complete file: {size/mb:8.1f} MB in {remux:6.2f} s = {size/mb/remux:7.1f} MB/s")
print(f"bodycamd recover-file + sync, cut:   {cut/mb:8.1f} MB in {rec:6.2f} s = {cut/mb/rec:7.1f} MB/s "
      f"({r['video_frames']} video + {r['audio_frames']} audio frames, {r['seconds']:.1f} s, peak RSS {rss/1024:.0f} MiB)")
print(f"ratio (recovery MB/s / remux MB/s): {(cut/rec)/(size/remux):.3f}")
PY
