#!/usr/bin/env bash
# Take a fresh Debian 12 machine to a working xmodal build. Idempotent: every step checks
# first and does nothing when already done, so re-running it is cheap.
#   - apt packages: PostgreSQL 15 server headers, libclang (bindgen), sudo (to run Postgres
#     as the postgres user when invoked as root)
#   - cargo-pgrx at exactly the version Cargo.toml pins
#   - `cargo pgrx init` against the system pg_config (no Postgres download)
#   - ONNX Runtime shared library for the encoders (scripts/get-onnxruntime.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
PGRX_VERSION=$(sed -n 's/^pgrx = "=\([0-9.]*\)"/\1/p' Cargo.toml)
APT_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev clang pkg-config libssl-dev sudo"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "setup: $*"; }

missing=$(for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    say "installing apt packages: $(echo $missing)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
    say "installing cargo-pgrx $PGRX_VERSION (about 16 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -qs "pg$PG_MAJOR = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    say "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
    cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
fi

# The extension and its SQL are installed into the system PostgreSQL directories; let the
# invoking user write there when it is not root (cargo pgrx install needs it).
if [ "$(id -u)" != 0 ]; then
    for d in "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --sharedir)/extension"; do
        [ -w "$d" ] || as_root chown -R "$(id -un)" "$d"
    done
fi

# Encoders: the ONNX Runtime library (from the PyPI wheel; no other download is reachable).
if [ -x scripts/get-onnxruntime.sh ]; then
    scripts/get-onnxruntime.sh
fi
say "done"
