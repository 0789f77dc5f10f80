#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. Rust unit tests that need no Postgres (parsing, kernels, graph logic, preprocessing)
#   2. build + install xmodal into the system PostgreSQL, start a throw-away cluster
#   3. the SQL regression suite pg_test/ (pg_regress: sql/*.sql against expected/*.out)
#   4. integration tests tests/*.sh (crash recovery, replicas, ...) against that cluster
# Ends with one line "N passed, N failed" over all of them; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
export PG_BIN=$("$PG_CONFIG" --bindir)   # also the server that scripts/pg-cluster.sh starts
PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
OUT=target/test-output
PGDATA_DIR=$PWD/target/pgtest/data
passed=0; failed=0

# XMODAL_SKIP_SETUP=1: for developers whose machine is already set up (CI always runs it).
if [ "${XMODAL_SKIP_SETUP:-0}" != 1 ]; then
    scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
rm -rf "$OUT"; mkdir -p "$OUT"

echo "== unit tests (cargo test)"
cargo test --release --lib 2>&1 | tee "$OUT/unit.log"
unit_status=${PIPESTATUS[0]}
read -r unit_passed unit_failed < <(awk '/^test result:/ { for (i = 1; i < NF; i++) {
    if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$OUT/unit.log")
passed=$((passed + unit_passed)); failed=$((failed + unit_failed))
# A build failure prints no "test result" line: count it as a failure.
[ "$unit_status" = 0 ] || [ "$unit_failed" != 0 ] || failed=$((failed + 1))

echo "== install"
install_flags=(--release --pg-config "$PG_CONFIG")
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
if ! cargo pgrx install "${install_flags[@]}" > "$OUT/install.log" 2>&1; then
    cat "$OUT/install.log"; echo "$passed passed, $((failed + 1)) failed"; exit 1
fi

echo "== regression suite (pg_test/)"
scripts/pg-cluster.sh stop "$PGDATA_DIR"
rm -rf "$PGDATA_DIR"
PORT=$(scripts/pg-cluster.sh start "$PGDATA_DIR") || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }
trap 'scripts/pg-cluster.sh stop "$PGDATA_DIR"' EXIT
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres XMODAL_PGDATA=$PGDATA_DIR
tests=$(cd pg_test/sql && ls *.sql | sed 's/\.sql$//' | sort)
# Test data outside the repository (../shared) is visible to the SQL through a psql variable.
SHARED_DIR=$(cd .. && pwd)/shared
"$PG_REGRESS" --bindir="$PG_BIN" --host=$PGHOST --port=$PORT --user=postgres \
    --inputdir=pg_test --outputdir="$OUT/regress" --dbname=xmodal_regress \
    --load-extension=xmodal $tests 2>&1 | tee "$OUT/regress.log"
passed=$((passed + $(grep -cE '^(ok|test) .* (ok|\.\.\. ok)' "$OUT/regress.log" || true)))
failed=$((failed + $(grep -cE 'FAILED|failed \(ignored\)' "$OUT/regress.log" || true)))
[ -f "$OUT/regress/regression.diffs" ] && head -c 20000 "$OUT/regress/regression.diffs"

echo "== integration tests (tests/)"
for t in tests/*.sh; do
    [ -e "$t" ] || continue
    [ "$t" = tests/lib.sh ] && continue   # sourced by the tests, not one itself
    echo "-- $t"
    if bash "$t" > "$OUT/$(basename "$t").log" 2>&1; then
        passed=$((passed + 1)); tail -n 3 "$OUT/$(basename "$t").log"
    else
        failed=$((failed + 1)); tail -n 40 "$OUT/$(basename "$t").log"; echo "FAILED: $t"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
