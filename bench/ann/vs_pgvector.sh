#!/usr/bin/env bash
# Issue 13's comparison: xhnsw against pgvector 0.8.6 in one server, m = 16, ef_construction =
# 64, on fashion-mnist 60k (L2) or, given VECS_DIR, on base.fvecs / query.fvecs /
# groundtruth.ivecs from there with cosine distance (bench/ann/debian_minilm.py makes such a
# set). Three indexes, each on its own copy of the rows so that a query can only use one: xhnsw
# with its defaults (fm: `codes = on`, searches order their frontier by one-bit codes), xhnsw
# with `codes = off` (fm_full: every distance in full precision, as before), and pgvector's
# hnsw (fm_pg). Reports build time and size, then
# recall@10 (against the set's ground truth) and single-client QPS per ef_search, the QPS being
# the median of ROUNDS rounds that alternate the three systems point by point, and finally each
# system's QPS at equal recall, interpolated linearly between the ef points around it (the
# lowest ef's QPS where even that one is above the recall). pgvector must be installed first
# (../shared/baselines/install-pgvector.sh).
#   bench/ann/vs_pgvector.sh [ROUNDS] [SECONDS_PER_POINT] [QUERIES] [VECS_DIR]
#   EF_SEARCHES="10 20 40 80 160" to choose the points
source "$(dirname "$0")/../lib.sh"
ROUNDS=${1:-3}
SECS=${2:-5}
QUERIES=${3:-1000}
VECS=${4:-}
EFS=(${EF_SEARCHES:-10 20 40 80 160})
SYSTEMS=(xhnsw full pgvector)
start_bench_cluster vs_pgvector
if [ -z "$VECS" ]; then
    load_fashion_mnist "$QUERIES"
    TRUTH=$DATA/fashion-mnist-784-euclidean.groundtruth100.ivecs
    DIMS=784 OP="<->" X_OPS=xvector_l2_ops PG_OPS=vector_l2_ops
else
    DIMS=$(python3 -c "import struct, sys; print(struct.unpack('<i', open(sys.argv[1], 'rb').read(4))[0])" "$VECS/base.fvecs")
    TRUTH=$VECS/groundtruth.ivecs OP="<=>" X_OPS=xvector_cosine_ops PG_OPS=vector_cosine_ops
    sql "CREATE TABLE fm (id int PRIMARY KEY, emb xvector($DIMS))"
    sql "CREATE TABLE fm_q (qid int PRIMARY KEY, emb xvector($DIMS))"
    python3 tests/vecs2tsv.py "$VECS/base.fvecs" | psql -X -q -c "\\copy fm FROM STDIN"
    python3 tests/vecs2tsv.py "$VECS/query.fvecs" --limit "$QUERIES" | psql -X -q -c "\\copy fm_q FROM STDIN"
    sql "VACUUM ANALYZE fm"
fi
QUERIES=$(sql "SELECT count(*) FROM fm_q")
echo "$(sql "SELECT count(*) FROM fm") rows of $DIMS dimensions, $QUERIES queries, distance $OP"
sql "CREATE EXTENSION vector"
sql "CREATE TABLE fm_gt (qid int, ids int[])"
python3 tests/vecs2tsv.py "$TRUTH" --limit "$QUERIES" |
    sed 's/\[/{/; s/\]/}/' | psql -X -q -c "\\copy fm_gt FROM STDIN"
sql "CREATE TABLE fm_full AS SELECT * FROM fm"
sql "CREATE TABLE fm_pg AS SELECT id, emb::text::vector($DIMS) AS emb FROM fm"
sql "CREATE TABLE fm_q_pg AS SELECT qid, emb::text::vector($DIMS) AS emb FROM fm_q"
sql "VACUUM ANALYZE fm_full"
sql "VACUUM ANALYZE fm_pg"
declare -A TABLE=([xhnsw]=fm [full]=fm_full [pgvector]=fm_pg)
declare -A QTABLE=([xhnsw]=fm_q [full]=fm_q [pgvector]=fm_q_pg)
declare -A INDEX=([xhnsw]="USING xhnsw (emb $X_OPS) WITH (m = 16, ef_construction = 64)"
                  [full]="USING xhnsw (emb $X_OPS) WITH (m = 16, ef_construction = 64, codes = off)"
                  [pgvector]="USING hnsw (emb $PG_OPS) WITH (m = 16, ef_construction = 64)")
declare -A BUILD=() SIZE=() RECALL=() QPS=()
for s in "${SYSTEMS[@]}"; do
    start=$(date +%s.%N)
    sql "CREATE INDEX ${TABLE[$s]}_idx ON ${TABLE[$s]} ${INDEX[$s]}"
    BUILD[$s]=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    SIZE[$s]=$(sql "SELECT round(pg_relation_size('${TABLE[$s]}_idx') / 1048576.0)")
done
ef_option() { # system ef
    case $1 in pgvector) echo "-c hnsw.ef_search=$2" ;; *) echo "-c xhnsw.ef_search=$2" ;; esac
}
for s in "${SYSTEMS[@]}"; do
    for ef in "${EFS[@]}"; do
        RECALL[$s,$ef]=$(PGOPTIONS="$(ef_option "$s" "$ef")" sql "
            SELECT round(avg((SELECT count(*) FROM unnest(a.ids) x WHERE x = ANY (g.ids[1:10])) / 10.0), 4)
            FROM (SELECT q.qid, ARRAY(SELECT id FROM ${TABLE[$s]} ORDER BY emb $OP q.emb LIMIT 10) AS ids
                  FROM ${QTABLE[$s]} q) a JOIN fm_gt g USING (qid)")
    done
    printf '\\set qid random(0, %d)\nSELECT id FROM %s ORDER BY emb %s (SELECT emb FROM %s WHERE qid = :qid) LIMIT 10;\n' \
        $((QUERIES - 1)) "${TABLE[$s]}" "$OP" "${QTABLE[$s]}" > "$BENCH_DIR/$s.sql"
done
for round in $(seq "$ROUNDS"); do
    for ef in "${EFS[@]}"; do
        for s in "${SYSTEMS[@]}"; do
            QPS[$s,$ef]+="$(qps "$BENCH_DIR/$s.sql" "$(ef_option "$s" "$ef")" "$SECS") "
        done
    done
    echo "round $round done"
done
echo
echo "| index | build s | size MB |"
echo "|---|---:|---:|"
for s in "${SYSTEMS[@]}"; do echo "| $s | ${BUILD[$s]} | ${SIZE[$s]} |"; done
echo
echo "| ef_search | xhnsw recall / QPS | codes off recall / QPS | pgvector recall / QPS |"
echo "|---:|---|---|---|"
for ef in "${EFS[@]}"; do
    row="| $ef"
    for s in "${SYSTEMS[@]}"; do
        QPS[$s,$ef]=$(median <<< "${QPS[$s,$ef]}")
        row+=" | ${RECALL[$s,$ef]} / ${QPS[$s,$ef]}"
    done
    echo "$row |"
done
# QPS at recall R: linear between the two ef points whose recalls enclose R ("-" when none do).
at_recall() { # system recall
    for ef in "${EFS[@]}"; do echo "${RECALL[$1,$ef]} ${QPS[$1,$ef]}"; done |
        awk -v r="$2" '{ if (NR > 1 && pr < r && $1 >= r) { printf "%.0f", pq + (r - pr) / ($1 - pr) * ($2 - pq); found = 1; exit }
                         if (NR == 1 && $1 >= r) { printf "%.0f", $2; found = 1; exit }
                         pr = $1; pq = $2 }
                       END { if (!found) printf "-" }'
}
echo
echo "| recall@10 | xhnsw QPS | codes off QPS | pgvector QPS | xhnsw / pgvector |"
echo "|---:|---:|---:|---:|---:|"
for r in 0.95 0.99 0.995 0.998; do
    x=$(at_recall xhnsw "$r"); sp=$(at_recall full "$r"); p=$(at_recall pgvector "$r")
    ratio=$(awk -v a="$x" -v b="$p" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2fx", a / b }')
    echo "| $r | $x | $sp | $p | $ratio |"
done
