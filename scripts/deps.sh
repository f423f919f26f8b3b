#!/bin/sh
# Install the Debian packages bodycamd needs to build, test, demo and
# benchmark, if any are missing. Idempotent; a no-op when all are present.
set -eu

PKGS="pkg-config clang libclang-dev g++ \
libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev \
libswscale-dev libswresample-dev \
ffmpeg sqlite3 b3sum time python3 python3-venv curl wrk prometheus util-linux coreutils \
libheif-examples systemd dpkg-dev chromium chromium-driver"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "installing missing Debian packages:$missing" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust) is not installed; install it from https://rustup.rs" >&2
    exit 1
fi

# The S3 tests and benchmarks talk to moto_server (an in-memory S3 with
# Object Lock) and use boto3 to act on the bucket behind bodycamd's back.
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c "import boto3" >/dev/null 2>&1; then
    echo "installing moto[server] (S3 for the tests) with pip" >&2
    python3 -m pip install -q 'moto[server]>=5' || echo "warning: moto could not be installed; the S3 tests will say SKIPPED" >&2
fi
