#!/usr/bin/env bash
# Filtered search on fashion-mnist (60,000 x 784, L2): recall@10 against the exact filtered
# answer and single-client QPS (pgbench, prepared statements) at 10%, 1% and 0.1% selectivity,
# for the exact filtered scan, the post-filter iterative scan (index on the vector alone) and
# the in-index filter (filter columns in the index), next to the unfiltered index query.
#   bench/filter/run.sh [QUERIES] [SECONDS_PER_POINT]
source "$(dirname "$0")/../lib.sh"
QUERIES=${1:-200}
SECS=${2:-10}
start_bench_cluster filter
load_fashion_mnist "$QUERIES"
# 10%: the real label (3 = Dress). 1% and 0.1%: synthetic, spread over the data.
sql "ALTER TABLE fm ADD pct int, ADD permille int"
sql "UPDATE fm SET pct = id % 100, permille = id % 1000"
sql "VACUUM ANALYZE fm"

declare -A COND=([unfiltered]="true" [10%]="label = 3" [1%]="pct = 7" [0.1%]="permille = 7")
recall() { # cond pgoptions
    PGOPTIONS="$2" sql "SELECT round(avg(hit), 3) FROM (
        SELECT (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e)) / 10.0 AS hit FROM fm_q q,
        LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM fm WHERE $1 ORDER BY emb <-> q.emb LIMIT 10) s) ga,
        LATERAL (SELECT array_agg(id) e FROM (SELECT id FROM fm WHERE $1 ORDER BY (emb <-> q.emb) + 0 LIMIT 10) s) ge) r"
}
point() { # label path pgoptions
    local cond=${COND[$1]}
    printf '\\set qid random(0, %d)\nSELECT id FROM fm WHERE %s ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = :qid) LIMIT 10;\n' \
        $((QUERIES - 1)) "$cond" > "$BENCH_DIR/q.sql"
    local plan; plan=$(PGOPTIONS="$3" sql "EXPLAIN SELECT id FROM fm WHERE $cond ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = 1) LIMIT 10")
    local used="no xhnsw index"
    [[ $plan == *"using fm_emb"* ]] && used="filter after the index"
    [[ $plan == *"using fm_hybrid"* ]] && used="filter inside the index"
    echo "| $1 | $2 (plan: $used) | $(recall "$cond" "$3") | $(qps "$BENCH_DIR/q.sql" "$3" "$SECS") |"
}

echo
echo "| selectivity | path | recall@10 | QPS |"
echo "|---|---|---:|---:|"
for s in 10% 1% 0.1%; do point "$s" exact "-c enable_indexscan=off"; done
sql "CREATE INDEX fm_emb ON fm USING xhnsw (emb)"
for s in unfiltered 10% 1% 0.1%; do point "$s" "post-filter" "-c enable_seqscan=off -c enable_bitmapscan=off"; done
sql "DROP INDEX fm_emb"
sql "CREATE INDEX fm_hybrid ON fm USING xhnsw (emb, label, pct, permille)"
for s in unfiltered 10% 1% 0.1%; do point "$s" "in-index" "-c enable_seqscan=off -c enable_bitmapscan=off"; done
