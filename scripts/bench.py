#!/usr/bin/env python3
"""bodycamd ingest benchmarks, each against a baseline run in the same invocation.

Usage: scripts/bench.py [--bin target/release/bodycamd] [--work DIR] [--only NAME ...]
                        [--video-gib 2] [--photos 10000] [--big-gib 4] [--latency-files 200]
                        [--quick]

--quick runs every benchmark small and once (48 s on
2 cores) and ends with each result on one line: run it before committing a
change to the copy, index, describe or render paths, to notice a 2x slowdown.

Benchmarks (names for --only):
  video    store >= 2 GiB of video-sized files; throughput vs `cp` + `sync`
  photos   10,000 small photos; files/s vs a shell pipeline (b3sum, cp, sqlite3 insert per file)
  memory   peak RSS of the daemon while storing one 4 GiB file, and with
           50,000 small files pending at once (GNU time)
  latency  watch mode: last write -> row visible, p50/p99, vs settle time + 1 s
  renditions
           remux of a 1080p H.264 file (times real time, vs `ffmpeg -c copy`);
           transcode of 1080p H.265 vs the `ffmpeg` CLI with the same settings;
           storing throughput while a large transcode runs vs unloaded

Files live under --work (default: a fresh folder in /var/tmp, on the same file
system as the archive, so that cp and bodycamd write to the same disk).
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def drop_caches():
    """Drop the page cache when allowed (root), so each run reads from disk."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def write_config(path, state, dock, settle="0.5", extra=""):
    with open(path, "w") as f:
        f.write(
            f'state_dir = "{state}"\n[ingest]\nmin_free_mb = 0\n[probe]\ntimeout_secs = 60\n'
            f'[log]\nlevel = "warn"\n[[stations]]\nid = "bench"\npath = "{dock}"\n'
            f"settle_secs = {settle}\n{extra}\n"
        )


SUMMARY = []


def summary(line):
    """A benchmark's result line: printed now, and again at the end."""
    print(line)
    SUMMARY.append(line)


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def bench_video(a, work):
    dock = os.path.join(work, "video-dock")
    fresh(dock)
    n = max(1, int(a.video_gib * 4))
    for i in range(n):
        # Camera video does not compress: random bytes have the same I/O cost.
        sh(f"head -c 256M /dev/urandom > {dock}/CAM0042_004711_2026112609{i:02d}00_{i:04d}.mp4")
    total = n * 256 * 1024 * 1024
    results = []
    dest = os.path.join(work, "cp-dest")
    state = os.path.join(work, "video-state")
    cfg = os.path.join(work, "video.toml")

    def run_cp():
        fresh(dest)
        drop_caches()
        t = timed(lambda: sh(f"cp {dock}/* {dest}/ && sync"))
        shutil.rmtree(dest)
        sh("sync")
        return t

    def run_bodycamd():
        fresh(state)
        write_config(cfg, state, dock)
        drop_caches()
        t = timed(lambda: sh(f"{a.bin} run --once --config {cfg} > /dev/null 2>&1"))
        shutil.rmtree(state)
        sh("sync")
        return t

    for rnd in range(a.rounds):
        cold = drop_caches()
        # Alternate which goes first, so that neither always meets a busy disk.
        if rnd % 2 == 0:
            t_cp, t_b = run_cp(), run_bodycamd()
        else:
            t_b, t_cp = run_bodycamd(), run_cp()
        results.append((t_cp, t_b))
        print(
            f"video round {rnd + 1}: {total / 2**30:.2f} GiB  cp+sync {t_cp:.2f} s ({total / t_cp / 2**20:.0f} MiB/s)"
            f"  bodycamd {t_b:.2f} s ({total / t_b / 2**20:.0f} MiB/s)  ratio {t_cp / t_b:.2f}"
            f"  {'cold cache' if cold else 'warm cache'}"
        )
    ratios = [c / b for c, b in results]
    summary(f"VIDEO: throughput ratio bodycamd / (cp+sync) = {statistics.median(ratios):.2f} (median of {len(ratios)}; goal >= 0.9)")
    shutil.rmtree(dock)


def bench_photos(a, work):
    dock = os.path.join(work, "photo-dock")
    fresh(dock)
    per = 100
    cams = max(1, a.photos // per)
    sh(
        f"{a.bin} simulate --out {dock} --cameras {cams} --clips 0 --photos {per} --recorders 0 --size 64x48 > /dev/null",
        stderr=subprocess.DEVNULL,
    )
    files = [os.path.join(r, f) for r, _, fs in os.walk(dock) for f in fs]
    count = len(files)
    # Baseline: what a careful admin would script: hash, copy, one insert per file.
    dest = os.path.join(work, "pipe-dest")
    fresh(dest)
    db = os.path.join(work, "pipe.sqlite3")
    if os.path.exists(db):
        os.remove(db)
    sh(f"sqlite3 {db} 'CREATE TABLE originals (id TEXT PRIMARY KEY, path TEXT)'")
    script = os.path.join(work, "pipe.sh")
    with open(script, "w") as f:
        f.write(
            "#!/bin/sh\nset -e\n"
            f'find {dock} -type f | while IFS= read -r p; do\n'
            '  h=$(b3sum --no-names "$p")\n'
            f'  cp "$p" {dest}/"$h"\n'
            f"  sqlite3 {db} \"INSERT OR IGNORE INTO originals VALUES ('$h', '$p')\"\n"
            "done\nsync\n"
        )
    drop_caches()
    t_pipe = timed(lambda: sh(f"sh {script}"))
    state = os.path.join(work, "photo-state")
    fresh(state)
    cfg = os.path.join(work, "photos.toml")
    write_config(cfg, state, dock)
    drop_caches()
    # "Stored" counts from the daemon's start (first_seen is the files'
    # ctime, from before the baseline ran).
    started_ms = time.time() * 1000.0
    t_b = timed(lambda: sh(f"{a.bin} run --once --config {cfg} > /dev/null 2>&1"))
    conn = sqlite3.connect(os.path.join(state, "index.sqlite3"))
    stored = conn.execute("SELECT count(*) FROM originals").fetchone()[0]
    last = conn.execute("SELECT max(ingested_at) FROM originals").fetchone()[0]
    thumbs, t_first, t_last = conn.execute(
        "SELECT count(*), min(created_at), max(created_at) FROM renditions WHERE kind = 'thumbnail'").fetchone()
    conn.close()
    store_secs = (last - started_ms) / 1000.0
    print(f"photos: {count} files; pipeline {t_pipe:.2f} s ({count / t_pipe:.0f} files/s)")
    print(f"photos: bodycamd run --once {t_b:.2f} s ({count / t_b:.0f} files/s, including start-up and describing every photo)")
    print(f"photos: bodycamd start -> last stored {store_secs:.2f} s ({stored / store_secs:.0f} files/s stored and indexed)")
    print(f"photos: {thumbs} thumbnails made in the same run")
    if thumbs > 1 and t_last > t_first:
        summary(f"PHOTOS: {(thumbs - 1) / ((t_last - t_first) / 1000.0):.0f} thumbnails/s (first to last made, same run)")
    summary(f"PHOTOS: {count / t_b:.0f} files/s end to end with thumbnails, {t_pipe / t_b:.1f}x the shell pipeline")
    assert stored == count, (stored, count)
    # The same files without renditions: storing and describing alone,
    # against the plainest copy there is (`cp -r` and one `sync`).
    fresh(state)
    write_config(cfg, state, dock)
    drop_caches()
    t_n = timed(lambda: sh(f"{a.bin} run --once --no-renditions --config {cfg} > /dev/null 2>&1"))
    shutil.rmtree(dest)
    drop_caches()
    t_cp = timed(lambda: sh(f"cp -r {dock} {dest} && sync"))
    summary(f"PHOTOS: {count / t_n:.0f} files/s end to end without renditions (run --once --no-renditions), "
            f"{t_pipe / t_n:.1f}x the shell pipeline; cp -r + sync {count / t_cp:.0f} files/s, "
            f"ratio bodycamd / cp = {t_cp / t_n:.2f}")
    for p in (dock, dest, state):
        shutil.rmtree(p)


def peak_rss(a, cfg):
    """`run --once`: the daemon's own peak RSS (KiB, its VmHWM read from
    /proc until it exits), the largest peak among its worker children, and
    the wall time. (GNU time's figure is the larger of the daemon's and its
    children's peaks, which hides which one it is.)"""
    def hwm(pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        except (OSError, StopIteration):
            return 0

    t0 = time.monotonic()
    p = subprocess.Popen([a.bin, "run", "--once", "--config", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own = child = 0
    while p.poll() is None:
        own = max(own, hwm(p.pid))
        try:
            kids = " ".join(open(f"/proc/{p.pid}/task/{t}/children").read()
                            for t in os.listdir(f"/proc/{p.pid}/task")).split()
        except OSError:
            kids = []
        for k in kids:
            child = max(child, hwm(k))
        time.sleep(0.05)
    assert p.returncode == 0, p.returncode
    return own, child, f"{time.monotonic() - t0:.1f} s"


def bench_memory(a, work):
    dock = os.path.join(work, "big-dock")
    fresh(dock)
    gib = a.big_gib
    sh(f"head -c {gib}G /dev/urandom > {dock}/CAM0042_004711_20261126093000_0001.mp4")
    state = os.path.join(work, "big-state")
    fresh(state)
    cfg = os.path.join(work, "big.toml")
    write_config(cfg, state, dock)
    drop_caches()
    rss_kib, child_kib, wall = peak_rss(a, cfg)
    summary(f"MEMORY: peak RSS storing one {gib} GiB file: {rss_kib / 1024:.1f} MiB (goal < 64 MiB), "
            f"largest worker child {child_kib / 1024:.1f} MiB, wall {wall}")
    for p in (dock, state):
        shutil.rmtree(p)
    # Many files pending at once: every one is found by the first scan and
    # waits on the store queue together.
    fresh(dock)
    fresh(state)
    for d in range(a.pending_files // 1000 + 1):
        sub = os.path.join(dock, f"CAM{d:04d}")
        os.makedirs(sub)
        for i in range(min(1000, a.pending_files - d * 1000)):
            with open(os.path.join(sub, f"IMG_{i:04d}.jpg"), "wb") as f:
                f.write(os.urandom(512))
    write_config(cfg, state, dock, extra="[renditions]\nenabled = false")
    rss_kib, child_kib, wall = peak_rss(a, cfg)
    summary(f"MEMORY: peak RSS with {a.pending_files} files pending at once: {rss_kib / 1024:.1f} MiB "
            f"(goal < 100 MiB), largest worker child {child_kib / 1024:.1f} MiB, wall {wall}")
    for p in (dock, state):
        shutil.rmtree(p)


def bench_latency(a, work):
    dock = os.path.join(work, "lat-dock")
    fresh(dock)
    state = os.path.join(work, "lat-state")
    fresh(state)
    cfg = os.path.join(work, "lat.toml")
    settle = 1.0
    write_config(cfg, state, dock, settle=str(settle))
    d = subprocess.Popen([a.bin, "run", "--config", cfg], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        written = {}
        for i in range(a.latency_files):
            p = os.path.join(dock, f"CAM0042_004711_20261126093000_{i:04d}.mp4")
            with open(p, "wb") as f:
                f.write(os.urandom(64 * 1024))
                f.flush()
                time.sleep(0.01)
                f.write(os.urandom(64 * 1024))
            written[os.path.basename(p).encode()] = time.time()
            time.sleep(0.02)
        db = os.path.join(state, "index.sqlite3")
        deadline = time.time() + 60
        rows = []
        while time.time() < deadline:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            rows = conn.execute("SELECT rel_path, ingested_at FROM sightings").fetchall()
            conn.close()
            if len(rows) >= len(written):
                break
            time.sleep(0.2)
    finally:
        d.terminate()
        d.wait()
    lat = sorted(ing / 1000.0 - written[bytes(rel)] for rel, ing in rows)
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    summary(
        f"LATENCY: {len(lat)} files, last write -> row visible: p50 {p50:.3f} s, p99 {p99:.3f} s, max {lat[-1]:.3f} s"
        f" (settle {settle:.1f} s; goal p99 < {settle + 1:.1f} s)"
    )
    for p in (dock, state):
        shutil.rmtree(p)


def ffmpeg_make(out, size, secs, vcodec):
    """A test-pattern clip with a tone, encoded fast (the source, not what is measured)."""
    x265 = "-x265-params log-level=error -tag:v hvc1" if vcodec == "libx265" else ""
    sh(
        f"ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size={size}:rate=30:duration={secs} "
        f"-f lavfi -i sine=frequency=440:sample_rate=48000:duration={secs} "
        f"-c:v {vcodec} -preset ultrafast {x265} -pix_fmt yuv420p -c:a aac -b:a 128k {out}"
    )


def render(a, job):
    """One rendition through bodycamd's render worker (the daemon's code path)."""
    import json

    out = subprocess.run([a.bin, "render-worker"], input=json.dumps(job).encode(), capture_output=True, check=True)
    ans = json.loads(out.stdout)
    if "ok" not in ans:
        raise SystemExit(f"render failed: {ans}")
    return ans["ok"]


def playable_job(src, out, video, audio):
    return {
        "task": "playable",
        "input": src,
        "output": out,
        "spec": {"video": video, "audio": audio, "max_height": 1080, "preset": "veryfast", "crf": 23,
                 "audio_bitrate": 128000},
    }


def bench_renditions(a, work):
    d = os.path.join(work, "renditions")
    fresh(d)
    secs = a.render_secs
    h264, hevc = os.path.join(d, "h264.mp4"), os.path.join(d, "hevc.mp4")
    print(f"renditions: making {secs} s 1080p30 sources ...")
    ffmpeg_make(h264, "1920x1080", secs, "libx264")
    ffmpeg_make(hevc, "1920x1080", secs, "libx265")
    out = os.path.join(d, "out.mp4")

    # Remux: bodycamd vs `ffmpeg -c copy -movflags +faststart`.
    rem, cli = [], []
    for _ in range(a.inner_rounds):
        rem.append(timed(lambda: render(a, playable_job(h264, out, "copy", "copy"))))
        cli.append(timed(lambda: sh(f"ffmpeg -hide_banner -loglevel error -y -i {h264} -c copy -movflags +faststart {out}")))
    r, c = statistics.median(rem), statistics.median(cli)
    summary(f"REMUX: 1080p H.264 {secs} s: bodycamd {r:.3f} s = {secs / r:.0f}x real time; "
          f"ffmpeg -c copy {c:.3f} s; ratio bodycamd/ffmpeg {r / c:.2f}")

    # Transcode: H.265 -> H.264 veryfast CRF 23, audio copied, fast start: same settings for both.
    rounds = []
    for rnd in range(a.inner_rounds):
        def ours():
            return timed(lambda: render(a, playable_job(hevc, out, "encode", "copy")))

        def theirs():
            return timed(lambda: sh(
                f"ffmpeg -hide_banner -loglevel error -y -i {hevc} -map 0:v:0 -map 0:a:0 -c:v libx264 -preset veryfast "
                f"-crf 23 -pix_fmt yuv420p -c:a copy -movflags +faststart {out}"))
        if rnd % 2 == 0:
            t_b, t_c = ours(), theirs()
        else:
            t_c, t_b = theirs(), ours()
        rounds.append((t_b, t_c))
        print(f"transcode round {rnd + 1}: bodycamd {t_b:.2f} s  ffmpeg CLI {t_c:.2f} s  ratio {t_b / t_c:.3f}")
    ratio = statistics.median([b / c for b, c in rounds])
    summary(f"TRANSCODE: wall time bodycamd / ffmpeg CLI = {ratio:.3f} (median of {a.inner_rounds}; goal <= 1.05)")

    # Storing while a large transcode runs: the daemon, watching a dock; N files
    # are renamed into it at once and timed until all are stored.
    n, size_mb = 8, 128
    staging = os.path.join(d, "staging")
    os.makedirs(staging)
    for i in range(n):
        sh(f"head -c {size_mb}M /dev/urandom > {staging}/CAM0042_004711_2026112609{i:02d}00_{i:04d}.mp4")

    def storing(loaded):
        dock, state, cfg = os.path.join(d, "dock"), os.path.join(d, "state"), os.path.join(d, "cfg.toml")
        fresh(dock)
        fresh(state)
        extra = '[renditions]\npreset = "veryfast"\nthumbnails = false\n' if loaded else "[renditions]\nenabled = false\n"
        write_config(cfg, state, dock, settle="0.2", extra=extra)
        if loaded:
            shutil.copy(hevc, os.path.join(dock, "big.mp4"))
        p = subprocess.Popen([a.bin, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db = os.path.join(state, "index.sqlite3")

        def q(sql):
            try:
                c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                try:
                    return c.execute(sql).fetchone()[0]
                finally:
                    c.close()
            except sqlite3.Error:
                return None

        if loaded:
            while q("SELECT count(*) FROM rendition_jobs WHERE state = 'running'") != 1:
                time.sleep(0.05)
            time.sleep(1)  # the encoder is at full speed
        else:
            while q("SELECT count(*) FROM stations") != 1:
                time.sleep(0.05)
        base = q("SELECT count(*) FROM originals") or 0
        sh("sync")
        t0 = time.monotonic()
        for f in sorted(os.listdir(staging)):
            os.rename(os.path.join(staging, f), os.path.join(dock, f))
        while (q("SELECT count(*) FROM originals") or 0) < base + n:
            time.sleep(0.01)
        t = time.monotonic() - t0
        still = q("SELECT count(*) FROM rendition_jobs WHERE state = 'running'") if loaded else 0
        p.terminate()
        p.wait()
        for f in os.listdir(dock):
            if f != "big.mp4":
                os.rename(os.path.join(dock, f), os.path.join(staging, f))
        shutil.rmtree(state)
        if loaded and still != 1:
            print("  (warning: the transcode ended before storing did; use a longer --render-secs)")
        return t

    res = []
    for rnd in range(a.inner_rounds):
        drop_caches()
        t_u = storing(False)
        drop_caches()
        t_l = storing(True)
        res.append(t_u / t_l)
        mb = n * size_mb
        print(f"storing round {rnd + 1}: {mb} MiB unloaded {t_u:.2f} s ({mb / t_u:.0f} MiB/s), during a 1080p transcode "
              f"{t_l:.2f} s ({mb / t_l:.0f} MiB/s), kept {t_u / t_l:.2f}")
    summary(f"STORING UNDER TRANSCODE: throughput kept = {statistics.median(res):.2f} of unloaded (median of {a.inner_rounds}; goal >= 0.8)")
    shutil.rmtree(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/bodycamd")
    ap.add_argument("--work")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--video-gib", type=float, default=2.0)
    ap.add_argument("--photos", type=int, default=10000)
    ap.add_argument("--big-gib", type=int, default=4)
    ap.add_argument("--latency-files", type=int, default=200)
    ap.add_argument("--pending-files", type=int, default=50000, help="files pending at once in the memory benchmark")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the video benchmark")
    ap.add_argument("--render-secs", type=int, default=30, help="length of the rendition benchmark's clips")
    ap.add_argument("--quick", action="store_true",
                    help="a one-minute version of every benchmark: smaller sizes, one round each")
    a = ap.parse_args()
    a.inner_rounds = 3
    if a.quick:
        a.video_gib, a.photos, a.big_gib, a.latency_files, a.pending_files = 0.25, 1000, 1, 40, 5000
        a.rounds, a.inner_rounds, a.render_secs = 1, 1, 5
    a.bin = os.path.abspath(a.bin)
    work = a.work or tempfile.mkdtemp(prefix="bodycamd-bench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    print(f"bench: {a.bin}; work {work}; {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M:%S')}")
    benches = {"video": bench_video, "photos": bench_photos, "memory": bench_memory, "latency": bench_latency,
               "renditions": bench_renditions}
    for name, fn in benches.items():
        if a.only and name not in a.only:
            continue
        fn(a, work)
        sys.stdout.flush()
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    if len(SUMMARY) > 1:
        print("\n== results ==")
        for line in SUMMARY:
            print(line)


if __name__ == "__main__":
    main()
