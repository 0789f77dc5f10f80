# Helpers for the integration tests (sourced, not run). Each test starts its own throw-away
# cluster with scripts/pg-cluster.sh so that it can crash or reconfigure it freely.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=${XMODAL_SHARED:-$(cd "$ROOT/.." && pwd)/shared}

source "$ROOT/scripts/pg-env.sh"   # PG_MAJOR, PG_CONFIG, PG_BIN (first on PATH: psql, ...)
PG_BIN_DIR=$PG_BIN

# Start a cluster in target/it/<name>; exports PGHOST/PGPORT/PGUSER/PGDATABASE; stopped on exit.

start_cluster() {
    CLUSTER_DIR=$ROOT/target/it/$1
    "$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"
    rm -rf "$CLUSTER_DIR"
    PGPORT=$("$ROOT/scripts/pg-cluster.sh" start "$CLUSTER_DIR")
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres
    trap '"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"' EXIT
    sql "CREATE EXTENSION xmodal"
}

sql() { psql -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# A test that cannot run here says why and exits 77, which scripts/test.sh counts as skipped
# (never as passed).
skip() { echo "SKIP: $*"; exit 77; }

# Skip when the team's datasets are not beside the checkout.
need_shared() {
    [ -e "$SHARED/data/$1" ] || skip "$SHARED/data/$1 not found (tests on shared datasets need ../shared)"
}

# assert_ge NAME VALUE MIN
assert_ge() {
    awk -v v="$2" -v m="$3" 'BEGIN { exit !(v >= m) }' || fail "$1 = $2, expected >= $3"
    echo "ok: $1 = $2 (>= $3)"
}
