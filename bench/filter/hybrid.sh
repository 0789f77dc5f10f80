#!/usr/bin/env bash
# Issue 14's table: hybrid search on fashion-mnist 60k (L2, LIMIT 10, 200 queries) under mixed
# filters (a class, a spread 1% column, a class plus a range, ranges alone, an array overlap plus
# a range), xmodal's xhnsw index on (emb, label, pct, tags) at default settings, next to pgvector
# 0.8.6 (hnsw, m 16, ef_construction 64, hnsw.iterative_scan = relaxed_order, ef_search 40) on
# the same rows in the same server, and the best exact plan the planner finds without an index
# scan (btree indexes on label and pct, GIN on tags, for bitmap scans). The exact plan runs on a
# copy of the table (fm_exact) that has those indexes and the xhnsw index: the xmodal column
# measures xhnsw alone (on fm, which has no other index a forced plan could take instead), and the
# plan without hints is the planner's choice on fm_exact, where every path is available. For each: recall@10 against the exact
# answer, the fewest rows any query returned, and single-client QPS, the median of ROUNDS rounds
# that alternate the three systems point by point. pgvector must be installed first
# (../shared/baselines/install-pgvector.sh PG_CONFIG).
#   bench/filter/hybrid.sh [ROUNDS] [SECONDS_PER_POINT]
source "$(dirname "$0")/../lib.sh"
ROUNDS=${1:-3}
SECS=${2:-5}
QUERIES=200
start_bench_cluster hybrid
load_fashion_mnist "$QUERIES"
sql "CREATE EXTENSION vector"
sql "ALTER TABLE fm ADD pct int, ADD tags int[]"
sql "UPDATE fm SET pct = (id::bigint * 7919) % 100, tags = ARRAY[id % 7, id % 11]"
sql "CREATE TABLE fm_pg AS SELECT id, emb::text::vector(784) AS v, label, pct, tags FROM fm"
sql "CREATE TABLE fm_q_pg AS SELECT qid, emb::text::vector(784) AS v FROM fm_q"
sql "CREATE TABLE fm_exact AS SELECT * FROM fm"
sql "CREATE INDEX ON fm_exact (label); CREATE INDEX ON fm_exact (pct); CREATE INDEX ON fm_exact USING gin (tags)"
sql "CREATE INDEX fm_hybrid ON fm USING xhnsw (emb, label, pct, tags)"
sql "CREATE INDEX fm_exact_hybrid ON fm_exact USING xhnsw (emb, label, pct, tags)"
sql "CREATE INDEX fm_pg_v ON fm_pg USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 64)"
sql "VACUUM ANALYZE fm"
sql "VACUUM ANALYZE fm_exact"
sql "VACUUM ANALYZE fm_pg"

FILTERS=("label = 3" "pct = 7" "label = 3 AND pct < 10" "pct < 10" "pct < 1" "label = 3 AND pct < 1" "tags && ARRAY[3] AND pct < 5")
declare -A OPTS=([xmodal]="-c enable_seqscan=off -c enable_bitmapscan=off"
                 [pgvector]="-c hnsw.iterative_scan=relaxed_order -c hnsw.ef_search=40 -c enable_seqscan=off -c enable_bitmapscan=off"
                 [exact]="-c enable_indexscan=off")
statement() { # system filter qid-expression
    case $1 in
        pgvector) echo "SELECT id FROM fm_pg WHERE $2 ORDER BY v <-> (SELECT v FROM fm_q_pg WHERE qid = $3) LIMIT 10" ;;
        exact) echo "SELECT id FROM fm_exact WHERE $2 ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = $3) LIMIT 10" ;;
        *) echo "SELECT id FROM fm WHERE $2 ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = $3) LIMIT 10" ;;
    esac
}
quality() { # system filter -> "recall|fewest rows"
    PGOPTIONS="${OPTS[$1]}" sql "SELECT round(sum((SELECT count(*) FROM unnest(a) x WHERE x = ANY (e)))::numeric
                                             / sum(cardinality(e)), 3) || '|' || min(coalesce(cardinality(a), 0))
        FROM fm_q q,
        LATERAL (SELECT array_agg(id) a FROM ($(statement "$1" "$2" q.qid)) s) ga,
        LATERAL (SELECT array_agg(id) e FROM (SELECT id FROM fm WHERE $2 ORDER BY (emb <-> q.emb) + 0 LIMIT 10) s) ge"
}
declare -A QUALITY=() QPS=() PATH_OF=()
for i in "${!FILTERS[@]}"; do
    f=${FILTERS[$i]}
    for s in xmodal pgvector exact; do
        QUALITY[$i,$s]=$(quality "$s" "$f")
        printf '\\set qid random(0, %d)\n%s;\n' $((QUERIES - 1)) "$(statement "$s" "$f" :qid)" > "$BENCH_DIR/$i-$s.sql"
    done
    PATH_OF[$i]=$(PGOPTIONS="${OPTS[xmodal]}" psql -X -q -At -c "$(statement xmodal "$f" 1)" -c "SELECT xmodal.xhnsw_last_scan_path()" | tail -1)
    PLAN=$(sql "EXPLAIN $(statement exact "$f" 1)" | grep -m1 -oE "(Index Scan using [a-z_]+|Bitmap Heap Scan|Seq Scan) on fm_exact( |$)" || true)
    PATH_OF[$i]+=" / planner default: ${PLAN:-?}"
done
for round in $(seq "$ROUNDS"); do
    for i in "${!FILTERS[@]}"; do
        for s in xmodal pgvector exact; do
            QPS[$i,$s]+="$(qps "$BENCH_DIR/$i-$s.sql" "${OPTS[$s]}" "$SECS") "
        done
    done
    echo "round $round done"
done
echo
echo "| filter | matching rows | pgvector recall / fewest rows / QPS | xmodal recall / fewest rows / QPS | best exact plan recall / QPS | xmodal path / plan without hints |"
echo "|---|---:|---|---|---|---|"
for i in "${!FILTERS[@]}"; do
    f=${FILTERS[$i]}
    row="| \`$f\` | $(sql "SELECT count(*) FROM fm WHERE $f")"
    for s in pgvector xmodal; do
        row+=" | ${QUALITY[$i,$s]%%|*} / ${QUALITY[$i,$s]##*|} / $(median <<< "${QPS[$i,$s]}")"
    done
    row+=" | ${QUALITY[$i,exact]%%|*} / $(median <<< "${QPS[$i,exact]}") | ${PATH_OF[$i]} |"
    echo "$row"
done
