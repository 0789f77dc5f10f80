#!/usr/bin/env bash
# Recall@10 of xhnsw against an exact scan on the shared ann-small sets (bigann10k: 10,000 x 128,
# fmnistsmall: 1,000 x 784), default index options, xhnsw.ef_search = 100:
#   L2 >= 0.99; cosine and inner product (on the same data normalised) >= 0.98.
source "$(dirname "$0")/lib.sh"
need_shared ann-small
start_cluster ann_recall
DATA=$SHARED/data/ann-small

load() { # table file [--normalize]
    sql "CREATE TABLE $1 (id int PRIMARY KEY, emb xvector)"
    python3 "$ROOT/tests/vecs2tsv.py" "$2" ${3:-} | psql -X -q -v ON_ERROR_STOP=1 -c "\\copy $1 FROM STDIN"
}

# recall TABLE QUERIES OPERATOR OPCLASS
recall() {
    sql "CREATE INDEX ${1}_idx ON $1 USING xhnsw (emb $4)"
    sql "$(cat <<SQL
CREATE TABLE result AS
WITH approx AS (
    SELECT q.id AS qid, a.id FROM $2 q CROSS JOIN LATERAL (
        SELECT id FROM $1 ORDER BY emb $3 q.emb LIMIT 10) a),
exact AS (
    SELECT q.id AS qid, e.id FROM $2 q CROSS JOIN LATERAL (
        SELECT id FROM $1 ORDER BY (emb $3 q.emb) + 0 LIMIT 10) e)
SELECT (SELECT count(*) FROM approx JOIN exact USING (qid, id)) / (10.0 * (SELECT count(*) FROM $2)) AS recall
SQL
)"
    local r; r=$(sql "SELECT round(recall, 4) FROM result"); sql "DROP TABLE result"
    # The approximate side must really have used the index.
    local plan; plan=$(sql "EXPLAIN SELECT id FROM $1 ORDER BY emb $3 '$(sql "SELECT emb FROM $2 LIMIT 1")' LIMIT 10")
    [[ $plan == *"Index Scan using ${1}_idx"* ]] || fail "$1 $3: the index was not used"
    sql "DROP INDEX ${1}_idx"
    echo "$r"
}

# Small tables would rather be scanned: force the index on the approximate side (the exact side
# orders by an expression no index can serve, so it scans either way).
export PGOPTIONS="-c xhnsw.ef_search=100 -c enable_seqscan=off"
for set in bigann10k fmnistsmall; do
    ext=$([ $set = bigann10k ] && echo bvecs || echo fvecs)
    load ${set} "$DATA/${set}_base.$ext"
    load ${set}_q "$DATA/${set}_query.$ext"
    load ${set}_n "$DATA/${set}_base.$ext" --normalize
    load ${set}_nq "$DATA/${set}_query.$ext" --normalize
    assert_ge "$set L2 recall@10" "$(recall $set ${set}_q '<->' xvector_l2_ops)" 0.99
    assert_ge "$set cosine recall@10" "$(recall ${set}_n ${set}_nq '<=>' xvector_cosine_ops)" 0.98
    assert_ge "$set inner-product recall@10" "$(recall ${set}_n ${set}_nq '<#>' xvector_ip_ops)" 0.98
done
