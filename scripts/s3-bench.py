#!/usr/bin/env python3
"""Storing to S3 against a plain upload, in one run.

moto_server (in memory) on a loopback port, a bucket with Object Lock, and
FILES files of SIZE_MB each. Three ways to store the same files, each timed
end to end, ROUNDS times in alternating order:

  boto3   boto3's upload_file for each file (its default transfer config:
          multipart above 8 MiB, 10 threads), into the same bucket
  s3      `bodycamd run --once` with the S3 archive: copy into the local
          cache hashing BLAKE3 + SHA-256, put create-once with checksums
          and an Object Lock, confirm, index
  local   `bodycamd run --once` with the local archive (no bucket)

Prints MiB/s for each and the ratio s3 / boto3 (goal >= 0.9).
Usage: scripts/s3-bench.py [--files 4] [--size-mb 64] [--rounds 3]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/bodycamd")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--part-mb", type=int, default=None, help="archive.s3.part_size_mb (default: bodycamd's)")
    ap.add_argument("--parallel", type=int, default=None, help="archive.s3.parallel_parts (default: bodycamd's)")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    port = free_port()
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="bodycamd-s3bench-", dir="/var/tmp")
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        src = os.path.join(work, "src")
        os.makedirs(src)
        names = []
        for i in range(a.files):
            n = f"clip-{i}.mp4"
            with open(os.path.join(src, n), "wb") as f:
                f.write(os.urandom(a.size_mb << 20))
            names.append(n)
        total_mib = a.files * a.size_mb
        creds = os.path.join(work, "s3.toml")
        with open(creds, "w") as f:
            f.write('access_key_id = "bench"\nsecret_access_key = "bench"\n')

        def run_bodycamd(tag, r, bucket):
            d = os.path.join(work, f"{tag}-{r}")
            dock = os.path.join(d, "dock")
            shutil.copytree(src, dock)
            s3cfg = ""
            if bucket:
                s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
                s3cfg = (f'[archive.s3]\nbucket = "{bucket}"\nendpoint = "{endpoint}"\n'
                         f'credentials_file = "{creds}"\n')
                if a.part_mb:
                    s3cfg += f"part_size_mb = {a.part_mb}\n"
                if a.parallel:
                    s3cfg += f"parallel_parts = {a.parallel}\n"
            cfg = os.path.join(d, "bodycamd.toml")
            with open(cfg, "w") as f:
                f.write(f'state_dir = "{d}/state"\n[renditions]\nenabled = false\n'
                        f'[ingest]\nmin_free_mb = 0\n{s3cfg}'
                        f'[[stations]]\nid = "dock"\npath = "{dock}"\nsettle_secs = 0\n')
            subprocess.run(["sync"], check=True)
            t = time.monotonic()
            subprocess.run([BIN, "run", "--once", "--config", cfg], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = time.monotonic() - t
            shutil.rmtree(d)
            return dt

        def run_boto3(r):
            bucket = f"plain-{r}"
            s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
            t = time.monotonic()
            for n in names:
                s3.upload_file(os.path.join(src, n), bucket, n)
            return time.monotonic() - t

        times = {"boto3": [], "s3": [], "local": []}
        for r in range(a.rounds):
            order = ["boto3", "s3", "local"] if r % 2 == 0 else ["local", "s3", "boto3"]
            for what in order:
                if what == "boto3":
                    dt = run_boto3(r)
                elif what == "s3":
                    dt = run_bodycamd("s3", r, f"evidence-{r}")
                else:
                    dt = run_bodycamd("local", r, None)
                times[what].append(dt)
                print(f"round {r + 1} {what:6s} {dt:7.2f} s  {total_mib / dt:7.1f} MiB/s", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\n{a.files} x {a.size_mb} MiB, median of {a.rounds}:")
        for k in ["boto3", "s3", "local"]:
            print(f"  {k:6s} {med[k]:7.2f} s  {total_mib / med[k]:7.1f} MiB/s")
        ratios = [b / s for b, s in zip(times["boto3"], times["s3"])]
        print(f"  bodycamd to S3 / boto3 upload_file throughput: {med['boto3'] / med['s3']:.2f} "
              f"(per round {min(ratios):.2f}-{max(ratios):.2f}; goal >= 0.9)")
    finally:
        moto.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
