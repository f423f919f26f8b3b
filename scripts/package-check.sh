#!/bin/sh
# Build the Debian package with `cargo deb`, install it on this machine with
# dpkg -i, and check what was installed: the binary passes check-config on the
# installed configuration, and the installed unit passes `systemd-analyze
# verify` and rates an exposure of 2.0 or lower with
# `systemd-analyze security --offline=true`. Removes the package again.
# Run by `make test` (CI); needs root (or sudo) for dpkg.
set -eu
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "package-check: needs root or sudo for dpkg -i" >&2; exit 1
    fi
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "installing cargo-deb from crates.io" >&2
    cargo install cargo-deb --locked --quiet
fi

cargo deb --quiet
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
