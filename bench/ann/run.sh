#!/usr/bin/env bash
# xhnsw on ann-benchmarks' fashion-mnist-784-euclidean (60,000 base vectors, L2): build time,
# index size, recall@10 and single-client QPS (pgbench, prepared statements) for
# ef_search in {10,20,40,80,160,320}, for m=16 with ef_construction 64 and 200, next to an
# exact scan measured in the same run. Not a test: run by hand, results go to bench/README.md.
#   bench/ann/run.sh [QUERIES] [SECONDS_PER_POINT]    (defaults 1000 queries, 10 s)
#   EF_CONSTRUCTIONS="64 200" EF_SEARCHES="10 20 40 80 160 320" to choose the points
source "$(dirname "$0")/../lib.sh"
QUERIES=${1:-1000}
SECS=${2:-10}
start_bench_cluster ann
load_fashion_mnist "$QUERIES"
# ground truth: the first 10 of the given exact top-100 of each query
sql "CREATE TABLE fm_gt (qid int, ids int[])"
python3 tests/vecs2tsv.py "$DATA/fashion-mnist-784-euclidean.groundtruth100.ivecs" --limit "$QUERIES" |
    sed 's/\[/{/; s/\]/}/' | psql -X -q -c "\\copy fm_gt FROM STDIN"
echo "loaded $(sql 'SELECT count(*) FROM fm') vectors, $QUERIES queries"
printf '\\set qid random(0, %d)\nSELECT id FROM fm ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = :qid) LIMIT 10;\n' \
    $((QUERIES - 1)) > "$BENCH_DIR/query.sql"
recall() { # PGOPTIONS [max qid]
    PGOPTIONS="$1" sql "SELECT round(avg((SELECT count(*) FROM unnest(a.ids) x WHERE x = ANY (g.ids[1:10])) / 10.0), 4)
        FROM (SELECT q.qid, ARRAY(SELECT id FROM fm ORDER BY emb <-> q.emb LIMIT 10) AS ids FROM fm_q q
              WHERE q.qid < ${2:-$QUERIES}) a JOIN fm_gt g USING (qid)"
}

echo
echo "| index | build s | size MB | ef_search | recall@10 | QPS | QPS / exact |"
echo "|---|---:|---:|---:|---:|---:|---:|"
exact_qps=$(qps "$BENCH_DIR/query.sql" "-c enable_indexscan=off" $((SECS * 2)))
echo "| exact scan | - | - | - | $(recall "-c enable_indexscan=off" 100) | $exact_qps | 1.00 |"
for efc in ${EF_CONSTRUCTIONS:-64 200}; do
    start=$(date +%s.%N)
    sql "CREATE INDEX fm_idx ON fm USING xhnsw (emb) WITH (m = 16, ef_construction = $efc)"
    build=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    size=$(sql "SELECT round(pg_relation_size('fm_idx') / 1048576.0)")
    for ef in ${EF_SEARCHES:-10 20 40 80 160 320}; do
        q=$(qps "$BENCH_DIR/query.sql" "-c xhnsw.ef_search=$ef" "$SECS")
        echo "| m=16, ef_construction=$efc | $build | $size | $ef | $(recall "-c xhnsw.ef_search=$ef") | $q | $(awk -v a="$q" -v b="$exact_qps" 'BEGIN { printf "%.0f", a / b }') |"
    done
    sql "DROP INDEX fm_idx"
done
