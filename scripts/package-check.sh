#!/bin/sh
# Build the Debian package with `cargo deb`, install it on this machine with
# dpkg -i, and check what was installed: the binary passes check-config on the
# installed configuration, and the installed unit passes `systemd-analyze
# verify` and rates an exposure of 2.0 or lower with
# `systemd-analyze security --offline=true`. Removes the package again.
# Run by `make test` (CI); needs root (or sudo) for dpkg.
#
# What is checked is the packaging (files, user, unit, configuration), not
# the compiler's optimisation: by default the package is made from the
# binaries `cargo test` already built (the dev profile), which saves CI a
# whole release build of every dependency (about 12 minutes on 2 cores).
# DEB_PROFILE=release checks the package exactly as released (`cargo deb`).
set -eu
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "package-check: needs root or sudo for dpkg -i" >&2; exit 1
    fi
fi
# Pinned: cargo-deb says packaging a dev build may become an error in a
# later version.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    echo "installing cargo-deb $CARGO_DEB_VERSION from crates.io" >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

PROFILE=${DEB_PROFILE:-dev}
case "$PROFILE" in dev|release) ;; *) echo "package-check: DEB_PROFILE is dev or release" >&2; exit 2;; esac
rm -f target/debian/bodycamd_*.deb
if [ "$PROFILE" = release ]; then
    cargo deb --quiet
else
    # The binaries of `cargo test`'s build (see scripts/api-fuzz.sh).
    cargo test --no-run --quiet 2>/dev/null || cargo test --no-run
    # cargo-deb warns that a dev build is not what it is for (this one is
    # checked, never released): its output is shown only when it fails.
    LOG=$(mktemp)
    if ! cargo deb --quiet --no-build --profile "$PROFILE" >"$LOG" 2>&1; then
        cat "$LOG" >&2; rm -f "$LOG"; exit 1
    fi
    rm -f "$LOG"
fi
DEB=$(ls -t target/debian/bodycamd_*.deb | head -1)
echo "package-check: built $DEB"
$SUDO dpkg -i "$DEB" >/dev/null
trap '$SUDO dpkg -r bodycamd >/dev/null 2>&1 || true' EXIT

/usr/bin/bodycamd check-config --config /etc/bodycamd/bodycamd.toml
getent passwd bodycamd >/dev/null || { echo "package-check: the bodycamd user was not created" >&2; exit 1; }
UNIT=/usr/lib/systemd/system/bodycamd.service
[ -f "$UNIT" ] || UNIT=/lib/systemd/system/bodycamd.service
systemd-analyze verify "$UNIT"
score=$(systemd-analyze security --offline=true "$UNIT" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "package-check: systemd-analyze security exposure $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || {
    echo "package-check: exposure $score is above 2.0" >&2; exit 1;
}
echo "package-check: ok"
