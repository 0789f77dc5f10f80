#!/usr/bin/env bash
# The README's demo command, non-interactive and small: it must finish, print the three result
# lists (5 rows each; the hybrid one only dresses), warn about the test model's random weights,
# and on a second run reuse the embeddings instead of computing them again.
source "$(dirname "$0")/lib.sh"
DEMO_DIR=$ROOT/target/it/demo
"$ROOT/scripts/pg-cluster.sh" stop "$DEMO_DIR"
rm -rf "$DEMO_DIR"
trap '"$ROOT/scripts/pg-cluster.sh" stop "$DEMO_DIR"' EXIT
export XMODAL_SKIP_SETUP=1 XMODAL_DEMO_ROWS=40 XMODAL_DEMO_PGDATA=$DEMO_DIR
unset XMODAL_MODEL_DIR

out=$("$ROOT/scripts/demo.sh" 2>&1) || { echo "$out"; fail "demo failed"; }
echo "$out" | tail -n 40
[ "$(grep -c '^(5 rows)$' <<<"$out")" = 3 ] || fail "expected three result lists of 5 rows"
grep -q "WARNING: no XMODAL_MODEL_DIR" <<<"$out" || fail "no warning about the test model"
grep -q "embedded .* photos" <<<"$out" || fail "no embedding progress shown"
grep -q "connect with:  psql postgresql://postgres@127.0.0.1:" <<<"$out" || fail "no connection string"
hybrid=$(sed -n '/3. hybrid/,/rows)/p' <<<"$out" | grep '^ *[0-9]' )
[ "$(wc -l <<<"$hybrid")" = 5 ] && ! grep -qvE "\| Women +\| Dresses +\|" <<<"$hybrid" ||
    fail "hybrid query returned rows that are not women's dresses: $hybrid"
echo "ok: demo printed three result lists"

again=$("$ROOT/scripts/demo.sh" 2>&1) || { echo "$again"; fail "second demo run failed"; }
grep -q "reusing them" <<<"$again" || fail "second run embedded again"
[ "$(grep -c '^(5 rows)$' <<<"$again")" = 3 ] || fail "second run: expected three result lists"
echo "ok: second run reused the embeddings"
