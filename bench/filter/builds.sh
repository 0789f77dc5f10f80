#!/usr/bin/env bash
# Two builds of xmodal compared on filtered scans, in one run: the hybrid table of
# bench/filter/hybrid.sh (fashion-mnist 60k, pct = id · 7919 mod 100, tags = ARRAY[id % 7,
# id % 11], xhnsw on (emb, label, pct, tags)), one server whose xmodal.so is swapped between the
# two builds (restart, one warming pass) for each of ROUNDS rounds, alternating. Per build and
# filter: the path taken, the buffers of one query (EXPLAIN (ANALYZE, BUFFERS), query 7) and
# single-client QPS over 200 queries, LIMIT 10, the median of the rounds. The installed
# xmodal.so is put back at the end. Build each .so first, e.g. for the commit before HEAD:
#   git checkout HEAD~1 && cargo pgrx install --release && cp "$(pg_config --pkglibdir)/xmodal.so" /tmp/old.so
#   bench/filter/builds.sh OLD.so NEW.so [ROUNDS] [SECONDS_PER_POINT] [FILTER...]
source "$(dirname "$0")/../lib.sh"
source scripts/pg-env.sh # PG_CONFIG: where xmodal.so is installed
OLD=$(realpath "${1:?old xmodal.so}")
NEW=$(realpath "${2:?new xmodal.so}")
ROUNDS=${3:-3}
SECS=${4:-5}
shift $(($# < 4 ? $# : 4))
FILTERS=("$@")
[ ${#FILTERS[@]} -gt 0 ] || FILTERS=("label = 3" "label = 3 AND pct < 10" "pct < 10" "tags && ARRAY[3] AND pct < 5")
INSTALLED=$("$PG_CONFIG" --pkglibdir)/xmodal.so
SAVED=$(mktemp)
cp "$INSTALLED" "$SAVED"

start_bench_cluster builds
trap 'scripts/pg-cluster.sh stop "$BENCH_DIR"; cp "$SAVED" "$INSTALLED"; rm -f "$SAVED"' EXIT
load_fashion_mnist 200
sql "ALTER TABLE fm ADD pct int, ADD tags int[]"
sql "UPDATE fm SET pct = (id::bigint * 7919) % 100, tags = ARRAY[id % 7, id % 11]"
sql "CREATE INDEX fm_hybrid ON fm USING xhnsw (emb, label, pct, tags)"
sql "VACUUM ANALYZE fm"
FORCE="-c enable_seqscan=off -c enable_bitmapscan=off"
for i in "${!FILTERS[@]}"; do
    printf '\\set qid random(0, 199)\nSELECT id FROM fm WHERE %s ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = :qid) LIMIT 10;\n' \
        "${FILTERS[$i]}" > "$BENCH_DIR.$i.sql"
done

declare -A QPS=() BUFFERS=() PATH_OF=()
for round in $(seq "$ROUNDS"); do
    for build in old new; do
        if [ $build = old ]; then cp "$OLD" "$INSTALLED"; else cp "$NEW" "$INSTALLED"; fi
        scripts/pg-cluster.sh stop "$BENCH_DIR"
        scripts/pg-cluster.sh start "$BENCH_DIR" >/dev/null
        for i in "${!FILTERS[@]}"; do
            f=${FILTERS[$i]}
            query="SELECT id FROM fm WHERE $f ORDER BY emb <-> (SELECT emb FROM fm_q WHERE qid = 7) LIMIT 10"
            qps "$BENCH_DIR.$i.sql" "$FORCE" 1 >/dev/null # warm the buffers
            BUFFERS[$i,$build]=$(PGOPTIONS="$FORCE" sql "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $query" |
                grep -m1 Buffers | sed 's/.*hit=\([0-9]*\).*/\1/')
            PATH_OF[$i,$build]=$(PGOPTIONS="$FORCE" psql -X -q -At -c "$query" -c "SELECT xmodal.xhnsw_last_scan_path()" | tail -n 1)
            QPS[$i,$build]+="$(qps "$BENCH_DIR.$i.sql" "$FORCE" "$SECS") "
        done
    done
    echo "round $round done"
done
echo
echo "| filter | old: path / buffers / QPS | new: path / buffers / QPS | new / old QPS |"
echo "|---|---|---|---:|"
for i in "${!FILTERS[@]}"; do
    old=$(median <<< "${QPS[$i,old]}")
    new=$(median <<< "${QPS[$i,new]}")
    echo "| \`${FILTERS[$i]}\` | ${PATH_OF[$i,old]} / ${BUFFERS[$i,old]} / $old | ${PATH_OF[$i,new]} / ${BUFFERS[$i,new]} / $new | $(awk -v a="$new" -v b="$old" 'BEGIN { printf "%.2fx", a / b }') |"
done
