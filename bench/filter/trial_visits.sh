#!/usr/bin/env bash
# The graph search alone (xhnsw.exact_filter_limit = 0) under caps on its visits
# (xhnsw.max_scan_tuples): recall@10 against the exact filtered answer and how many of the 20
# queries hit the cap (NOTICE), for ranges alone whose matches are spread (pct) or lie in one
# region (rank <= N: the N rows nearest the centroid of class 0; class-0 queries are near it,
# class-1 queries far). What filter::graph_trial_visits is sized from.
#   bench/filter/trial_visits.sh
source "$(dirname "$0")/../lib.sh"
start_bench_cluster trial_visits
load_fashion_mnist 400
sql "ALTER TABLE fm ADD pct int, ADD rank int"
sql "WITH c AS (SELECT avg(emb) AS v FROM fm WHERE label = 0),
          r AS (SELECT id, row_number() OVER (ORDER BY emb <-> (SELECT v FROM c)) AS n FROM fm)
     UPDATE fm SET rank = r.n, pct = (fm.id::bigint * 7919) % 100 FROM r WHERE r.id = fm.id"
sql "CREATE TABLE q AS (SELECT * FROM fm_q WHERE label = 0 ORDER BY qid LIMIT 20)
                       UNION ALL (SELECT * FROM fm_q WHERE label = 1 ORDER BY qid LIMIT 20)"
sql "CREATE INDEX fm_mixed ON fm USING xhnsw (emb, label, pct, rank)"
sql "VACUUM ANALYZE fm"
FORCE="-c enable_seqscan=off -c enable_bitmapscan=off -c xhnsw.exact_filter_limit=0"
for cond in "pct < 1" "pct < 10" "rank <= 600" "rank <= 6000" "rank <= 60"; do
  for class in 0 1; do
    for cap in 2000 4000 8000 16000 60000; do
        out=$(PGOPTIONS="$FORCE -c xhnsw.max_scan_tuples=$cap" psql -X -q -At -c "SELECT round(avg(hit), 3) FROM (
        SELECT (SELECT count(*) FROM unnest(a) x WHERE x = ANY (e)) / 10.0 AS hit FROM q,
        LATERAL (SELECT array_agg(id) a FROM (SELECT id FROM fm WHERE $cond ORDER BY emb <-> q.emb LIMIT 10) s) ga,
        LATERAL (SELECT array_agg(id) e FROM (SELECT id FROM fm WHERE $cond ORDER BY (emb <-> q.emb) + 0 LIMIT 10) s) ge
        WHERE q.label = $class) r" 2>&1)
        echo "$cond | q$class | cap $cap | recall $(echo "$out" | tail -1) | notices $(echo "$out" | grep -c NOTICE)"
    done
  done
done
