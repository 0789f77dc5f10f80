#!/usr/bin/env bash
# VACUUM and CREATE INDEX on xhnsw stay interruptible and let writes through:
# 1. An INSERT started while VACUUM is in its index phase commits before that phase ends
#    (VACUUM releases the lock that inserts share between repair batches). Ordering only: the
#    VACUUM is slowed with cost-based delay and still in "vacuuming indexes" afterwards.
# 2. VACUUM cancelled while it repairs the graph (seen holding the insert lock) fails with
#    57014, the server stays up, and the next VACUUM finishes the repair (index_check clean).
# 3. CREATE INDEX cancelled while it builds the graph (its worker threads block every signal)
#    fails with 57014 without writing pages, and the server stays up.
source "$(dirname "$0")/lib.sh"
start_cluster interrupts
DIMS=32
started=$(sql "SELECT pg_postmaster_start_time()")

# No other index: VACUUM's index phase is then exactly xhnsw's bulk delete.
sql "CREATE TABLE items (id bigserial, v xvector($DIMS), cat int NOT NULL DEFAULT 0)"
sql "CREATE FUNCTION rnd() RETURNS xvector LANGUAGE sql AS
     'SELECT array_to_xvector(ARRAY(SELECT random() * 2 - 1 FROM generate_series(1, $DIMS)), $DIMS, true)'"
sql "INSERT INTO items (v, cat) SELECT rnd(), g % 10 FROM generate_series(1, 10000) g"
sql "CREATE INDEX items_v ON items USING xhnsw (v, cat)"

# poll SQL: wait (bounded by a count of tries, not by a clock) until SQL returns a non-empty value.
poll() {
    local out
    for _ in $(seq 3000); do
        out=$(sql "$1")
        [ -n "$out" ] && { echo "$out"; return 0; }
        sleep 0.05
    done
    fail "never true: $1"
}

# A VACUUM slowed down by cost-based delay, in the background (its psql's pid in $client).
slow_vacuum() {
    psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "SET application_name = 'slow_vacuum'" \
        -c "SET vacuum_cost_delay = '2ms'" -c "SET vacuum_cost_limit = 50" -c "SET vacuum_cost_page_dirty = 0" \
        -c "VACUUM items" > "$1" 2>&1 &
    client=$!
}
vacuum_pid() { poll "SELECT pid FROM pg_stat_activity WHERE application_name = 'slow_vacuum' AND query LIKE 'VACUUM%'"; }
phase() { sql "SELECT phase FROM pg_stat_progress_vacuum WHERE pid = $1"; }

# 1. An insert completes during the index phase.
sql "DELETE FROM items WHERE id % 5 = 0"
slow_vacuum "$ROOT/target/it/interrupts.vacuum1.log"
pid=$(vacuum_pid)
poll "SELECT 1 FROM pg_stat_progress_vacuum WHERE pid = $pid AND phase = 'vacuuming indexes'" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "SET statement_timeout = '60s'" -c "INSERT INTO items (v) SELECT rnd()" ||
    fail "the INSERT during VACUUM failed"
after=$(phase "$pid")
[ "$after" = "vacuuming indexes" ] || fail "the INSERT committed only when VACUUM had left its index phase (now: '$after')"
echo "ok: an INSERT committed while VACUUM was still vacuuming the index"
wait "$client" || { cat "$ROOT/target/it/interrupts.vacuum1.log"; fail "the slowed VACUUM failed"; }

# 2. Cancel VACUUM during its repair.
sql "DELETE FROM items WHERE id % 5 = 1"
slow_vacuum "$ROOT/target/it/interrupts.vacuum2.log"
pid=$(vacuum_pid)
poll "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
      WHERE l.pid = $pid AND c.relname = 'items_v' AND l.locktype = 'page' AND l.page = 0 AND l.granted" >/dev/null
sql "SELECT pg_cancel_backend($pid)" >/dev/null
status=0; wait "$client" || status=$?
grep -q '^ERROR:  57014' "$ROOT/target/it/interrupts.vacuum2.log" && [ "$status" != 0 ] ||
    { cat "$ROOT/target/it/interrupts.vacuum2.log"; fail "VACUUM was not cancelled during its repair (57014)"; }
echo "ok: VACUUM cancelled in its repair: 57014"
sql "VACUUM (INDEX_CLEANUP ON) items"
problems=$(sql "SELECT string_agg(check_name || '=' || value, ' ') FROM xmodal.index_check('items_v')
                WHERE check_name IN ('bad_entry_point', 'bad_links', 'links_to_deleted', 'level_violations',
                                     'unreachable', 'directory_mismatches') AND value <> 0")
[ -z "$problems" ] || fail "index_check after the interrupted repair and another VACUUM: $problems"
[ "$(sql "SELECT value FROM xmodal.index_check('items_v') WHERE check_name = 'heap_tids'")" = "$(sql "SELECT count(*) FROM items")" ] ||
    fail "heap TIDs differ from live rows after VACUUM"
echo "ok: the next VACUUM finished the repair (index_check clean)"

# 3. Cancel CREATE INDEX while it builds the graph.
sql "CREATE TABLE big AS SELECT rnd() AS v FROM generate_series(1, 60000)"
psql -X -q -At -v VERBOSITY=verbose -c "SET application_name = 'slow_build'" -c "SET max_parallel_maintenance_workers = 1" \
    -c "CREATE INDEX big_v ON big USING xhnsw (v)" > "$ROOT/target/it/interrupts.build.log" 2>&1 &
client=$!
pid=$(poll "SELECT pid FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
            WHERE a.application_name = 'slow_build' AND p.phase = 'building index: building graph'")
# The build's worker threads block SIGINT, SIGUSR1, SIGALRM and SIGTERM (bits 2, 10, 14, 15).
threads=0
for status_file in /proc/"$pid"/task/*/status; do
    [ "$(basename "$(dirname "$status_file")")" = "$pid" ] && continue
    mask=$(sed -n 's/^SigBlk:\t//p' "$status_file" 2>/dev/null) || continue
    [ -n "$mask" ] || continue
    threads=$((threads + 1))
    (( (0x$mask >> 1 & 1) && (0x$mask >> 9 & 1) && (0x$mask >> 13 & 1) && (0x$mask >> 14 & 1) )) ||
        fail "a build thread of backend $pid has signal mask $mask"
done
[ "$threads" -ge 1 ] || fail "no worker thread seen in backend $pid during the graph build"
echo "ok: $threads build worker thread(s) with Postgres' signals blocked"
sql "SELECT pg_cancel_backend($pid)" >/dev/null
seen=""
while kill -0 "$client" 2>/dev/null; do
    seen+=$(sql "SELECT phase FROM pg_stat_progress_create_index WHERE pid = $pid")
done
status=0; wait "$client" || status=$?
[ "$status" != 0 ] && grep -q '^ERROR:  57014' "$ROOT/target/it/interrupts.build.log" ||
    { cat "$ROOT/target/it/interrupts.build.log"; fail "CREATE INDEX was not cancelled (57014)"; }
[[ "$seen" != *"writing pages"* ]] || fail "the cancelled build went on to write pages"
echo "ok: CREATE INDEX cancelled while building the graph (57014)"
code=$( { psql -X -q -At -v VERBOSITY=verbose -c "SET statement_timeout = '300ms'" \
    -c "CREATE INDEX big_v ON big USING xhnsw (v)" 2>&1 || true; } | sed -n 's/^ERROR:  \([0-9A-Z]*\):.*/\1/p')
[ "$code" = 57014 ] || fail "CREATE INDEX under statement_timeout: SQLSTATE '$code', expected 57014"
echo "ok: CREATE INDEX under statement_timeout: 57014"

[ "$(sql "SELECT pg_postmaster_start_time()")" = "$started" ] || fail "the server restarted"
[ "$(sql "SELECT count(*) FROM items ORDER BY 1")" -gt 0 ] || fail "no rows"
echo "ok: the server stayed up"
