#!/usr/bin/env bash
# In-index filtered search under several session settings: recall@10 against the exact filtered
# answer, single-client QPS, and index buffers read per query (mean of 20 queries, from EXPLAIN
# (ANALYZE, BUFFERS)), on fashion-mnist 60k with the filter columns of bench/filter/run.sh.
#   bench/filter/sweep.sh [SECONDS_PER_POINT] 'SETTINGS' ['SETTINGS' ...]
# SETTINGS is a PGOPTIONS string, e.g. '-c xhnsw.ef_search=20'.
source "$(dirname "$0")/../lib.sh"
SECS=${1:-5}; shift
QUERIES=200
start_bench_cluster sweep
load_fashion_mnist "$QUERIES"
sql "ALTER TABLE fm ADD pct int, ADD permille int, ADD deci int"
sql "UPDATE fm SET pct = id % 100, permille = id % 1000, deci = id % 10"
sql "VACUUM ANALYZE fm"
sql "CREATE INDEX fm_hybrid ON fm USING xhnsw (emb, label, pct, permille, deci)"
FORCE="-c enable_seqscan=off -c enable_bitmapscan=off"

# 10%: the real label 3 (its rows lie away from most queries); 10% spread: a synthetic column.
declare -A COND=([unfiltered]="true" [10%]="label = 3" ["10% spread"]="deci = 7" [1%]="pct = 7")
recall() { # cond pgoptions
    PGOPTIONS="$2" sql "SELECT round(avg(hit), 3) FROM (
        SELECT (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e)) / 10.0 AS hit FROM fm_q q,
        LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM fm WHERE $1 ORDER BY emb <-> q.emb LIMIT 10) s) ga,
        LATERAL (SELECT array_agg(id) e FROM (SELECT id FROM fm WHERE $1 ORDER BY (emb <-> q.emb) + 0 LIMIT 10) s) ge) r"
}
buffers() { # cond pgoptions
    local total=0 q b
    for q in $(seq 0 10 199); do
        b=$(PGOPTIONS="$2" sql "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM fm WHERE $1
            ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = $q) LIMIT 10" | grep -m1 'Buffers' | sed 's/.*hit=\([0-9]*\).*/\1/')
        total=$((total + b))
    done
    echo $((total / 20))
}

echo
echo "| settings | selectivity | recall@10 | QPS | buffers per query |"
echo "|---|---|---:|---:|---:|"
for settings in "$@"; do
    for s in unfiltered 10% "10% spread" 1%; do
        cond=${COND[$s]}
        printf '\\set qid random(0, %d)\nSELECT id FROM fm WHERE %s ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = :qid) LIMIT 10;\n' \
            $((QUERIES - 1)) "$cond" > "$BENCH_DIR/q.sql"
        opts="$FORCE $settings"
        echo "| \`$settings\` | $s | $(recall "$cond" "$opts") | $(qps "$BENCH_DIR/q.sql" "$opts" "$SECS") | $(buffers "$cond" "$opts") |"
    done
done
