#!/usr/bin/env bash
# The hybrid-search target, repeated: single-client QPS of the unfiltered query and of the 1% and
# 0.1% in-index filters on one index with filter columns (fashion-mnist 60k, as bench/filter/run.sh),
# measured in turn ROUNDS times; prints each round, the medians, and each filter's latency as a
# multiple of the unfiltered one (from the medians).
#   bench/filter/target.sh [ROUNDS] [SECONDS_PER_POINT]
source "$(dirname "$0")/../lib.sh"
ROUNDS=${1:-5}
SECS=${2:-8}
QUERIES=200
start_bench_cluster target
load_fashion_mnist "$QUERIES"
sql "ALTER TABLE fm ADD pct int, ADD permille int"
sql "UPDATE fm SET pct = id % 100, permille = id % 1000"
sql "VACUUM ANALYZE fm"
sql "CREATE INDEX fm_hybrid ON fm USING xhnsw (emb, label, pct, permille)"
FORCE="-c enable_seqscan=off -c enable_bitmapscan=off"

declare -A COND=([unfiltered]="true" [1%]="pct = 7" [0.1%]="permille = 7")
declare -A RESULTS=()
for s in unfiltered 1% 0.1%; do
    printf '\\set qid random(0, %d)\nSELECT id FROM fm WHERE %s ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = :qid) LIMIT 10;\n' \
        $((QUERIES - 1)) "${COND[$s]}" > "$BENCH_DIR/$s.sql"
done
for round in $(seq "$ROUNDS"); do
    line="round $round:"
    for s in unfiltered 1% 0.1%; do
        q=$(qps "$BENCH_DIR/$s.sql" "$FORCE" "$SECS")
        RESULTS[$s]+="$q "
        line+=" $s $q"
    done
    echo "$line QPS"
done
base=$(median <<< "${RESULTS[unfiltered]}")
echo
echo "| query | median QPS | latency / unfiltered |"
echo "|---|---:|---:|"
for s in unfiltered 1% 0.1%; do
    m=$(median <<< "${RESULTS[$s]}")
    echo "| $s | $m | $(awk -v b="$base" -v m="$m" 'BEGIN { printf "%.2f", b / m }') |"
done
