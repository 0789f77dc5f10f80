#!/usr/bin/env bash
# Buffers per query (index and heap, EXPLAIN (ANALYZE, BUFFERS), mean of 20 queries) of filtered
# xhnsw scans at default settings and as the graph search alone (xhnsw.exact_filter_limit = 0),
# the path each default scan takes, and recall@10 of the graph alone (50 queries, against the
# exact filtered answer), on the hybrid table of bench/filter/hybrid.sh: fashion-mnist 60k with
# pct = id · 7919 mod 100 and tags = ARRAY[id % 7, id % 11]. Counts, not timings: they compare
# across builds (check out and install the build to compare, then run this again).
#   bench/filter/range_buffers.sh
source "$(dirname "$0")/../lib.sh"
start_bench_cluster range_buffers
load_fashion_mnist 200
sql "ALTER TABLE fm ADD pct int, ADD tags int[]"
sql "UPDATE fm SET pct = (id::bigint * 7919) % 100, tags = ARRAY[id % 7, id % 11]"
sql "CREATE INDEX fm_hybrid ON fm USING xhnsw (emb, label, pct, tags)"
sql "VACUUM ANALYZE fm"
FORCE="-c enable_seqscan=off -c enable_bitmapscan=off"
GRAPH_ALONE="$FORCE -c xhnsw.exact_filter_limit=0"
buffers() { # condition pgoptions
    local total=0 q b
    for q in $(seq 0 10 199); do
        b=$(PGOPTIONS="$2" sql "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM fm WHERE $1
            ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = $q) LIMIT 10" | grep -m1 'Buffers' | sed 's/.*hit=\([0-9]*\).*/\1/')
        total=$((total + b))
    done
    echo $((total / 20))
}
recall() { # condition pgoptions
    PGOPTIONS="$2" sql "SELECT round(avg(hit), 3) FROM (
        SELECT (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e)) / 10.0 AS hit FROM fm_q q,
        LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM fm WHERE $1 ORDER BY emb <-> q.emb LIMIT 10) s) ga,
        LATERAL (SELECT array_agg(id) e FROM (SELECT id FROM fm WHERE $1 ORDER BY (emb <-> q.emb) + 0 LIMIT 10) s) ge
        WHERE q.qid < 50) r"
}
echo
echo "| filter | default path | default buffers | graph alone buffers | graph alone recall@10 |"
echo "|---|---|---:|---:|---:|"
for cond in "true" "pct < 10" "label = 3" "label = 3 AND pct < 10" "tags && ARRAY[3] AND pct < 5" "pct < 1"; do
    path=$(PGOPTIONS="$FORCE" psql -X -q -At -c "SELECT id FROM fm WHERE $cond ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = 0) LIMIT 10" \
        -c "SELECT xmodal.xhnsw_last_scan_path()" | tail -n 1)
    echo "| \`$cond\` | $path | $(buffers "$cond" "$FORCE") | $(buffers "$cond" "$GRAPH_ALONE") | $(recall "$cond" "$GRAPH_ALONE" 2>/dev/null) |"
done
