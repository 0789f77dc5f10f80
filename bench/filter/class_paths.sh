#!/usr/bin/env bash
# Which path a filtered xhnsw scan should take for a real class (issue 14): fashion-mnist 60k,
# an xhnsw index on (emb, label, pct), 100 queries, LIMIT 10. For each filter: the scan at
# default settings; xhnsw.exact_filter_limit = 60000, which sends a tag-testable filter to the
# directory path; and a limit of 0, the graph search alone (no hand-over to the exact path).
# xmodal.xhnsw_last_scan_path() names the path taken. Recall@10 against an exact scan, and
# single-client QPS: the median of ROUNDS rounds of SECONDS_PER_POINT that alternate the modes.
#   bench/filter/class_paths.sh [ROUNDS] [SECONDS_PER_POINT]
source "$(dirname "$0")/../lib.sh"
ROUNDS=${1:-3}
SECS=${2:-5}
QUERIES=100
start_bench_cluster class_paths
load_fashion_mnist "$QUERIES"
sql "ALTER TABLE fm ADD pct int"
sql "UPDATE fm SET pct = (id::bigint * 7919) % 100"
sql "CREATE INDEX fm_paths ON fm USING xhnsw (emb, label, pct)"
sql "VACUUM ANALYZE fm"
FILTERS=("label = 0" "label = 3" "label = 5" "pct < 10")
declare -A LIMITS=([default]=-1 [exact]=60000 [graph]=0)
MODES=(default exact graph)
options() { echo "-c enable_seqscan=off -c enable_bitmapscan=off -c xhnsw.exact_filter_limit=${LIMITS[$1]}"; }
declare -A QPS=() RECALL=() PATH_OF=()
for i in "${!FILTERS[@]}"; do
    f=${FILTERS[$i]}
    printf '\\set qid random(0, %d)\nSELECT id FROM fm WHERE %s ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = :qid) LIMIT 10;\n' \
        $((QUERIES - 1)) "$f" > "$BENCH_DIR/paths-$i.sql"
    for mode in "${MODES[@]}"; do
        RECALL[$i,$mode]=$(PGOPTIONS="$(options "$mode")" sql "SELECT round(avg((SELECT count(*) FROM
            (SELECT id FROM fm WHERE $f ORDER BY emb <-> q.emb LIMIT 10) a
            WHERE id IN (SELECT id FROM fm WHERE $f ORDER BY (emb <-> q.emb) + 0 LIMIT 10))) / 10, 3) FROM fm_q q")
        PATH_OF[$i,$mode]=$(PGOPTIONS="$(options "$mode")" psql -X -q -At \
            -c "SELECT count(*) FROM (SELECT id FROM fm WHERE $f ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = 1) LIMIT 10) s" \
            -c "SELECT xmodal.xhnsw_last_scan_path()" | tail -n 1)
    done
done
for round in $(seq "$ROUNDS"); do
    for i in "${!FILTERS[@]}"; do
        for mode in "${MODES[@]}"; do
            QPS[$i,$mode]+="$(qps "$BENCH_DIR/paths-$i.sql" "$(options "$mode")" "$SECS") "
        done
    done
done
echo
echo "| filter | matching rows | mode | path taken | recall@10 | QPS |"
echo "|---|---:|---|---|---|---|"
for i in "${!FILTERS[@]}"; do
    f=${FILTERS[$i]}
    rows=$(sql "SELECT count(*) FROM fm WHERE $f")
    for mode in "${MODES[@]}"; do
        echo "| \`$f\` | $rows | $mode | ${PATH_OF[$i,$mode]} | ${RECALL[$i,$mode]} | $(median <<< "${QPS[$i,$mode]}") |"
    done
done
