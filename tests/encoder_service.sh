#!/usr/bin/env bash
# The encoder service (xmodal in shared_preload_libraries, xmodal.encoder = service):
#   - one worker, in pg_stat_activity; xmodal.preload loads its models at start;
#   - 8 connections x 25 embed_text: one text tower in xmodal.encoder_service, fewer batches than
#     requests, every answer equal to backend mode (cosine >= 0.9999);
#   - a connection that only embeds never maps ONNX Runtime;
#   - a query waiting for a stopped worker is cancelled by statement_timeout, its slot reused;
#     calls cancelled while the worker holds them lose their answer, never to the next caller;
#     a full queue is an ERROR of class 53; a call larger than a slot goes in several requests;
#   - pg_terminate_backend of the worker: the next call succeeds or errors clearly, a new worker
#     serves within seconds, the postmaster is not restarted;
#   - register again / drop are seen by the worker; xmodal.service_threads sizes its sessions;
#   - pg_test/sql/embed.sql passes against this cluster (expected output of service mode:
#     tests/encoder_service/embed.out).
source "$(dirname "$0")/lib.sh"
LIBRARY=/usr/local/lib/xmodal/libonnxruntime.so.1.31.1
[ -f "$LIBRARY" ] || { echo "SKIP: $LIBRARY not found (scripts/get-onnxruntime.sh)"; exit 0; }
MODELS=$ROOT/tests/models
start_cluster encoder_service
sql "SELECT xmodal.register_model('es_oc', '$MODELS/openclip-tiny')" 2>/dev/null
sql "SELECT xmodal.register_model('es_pre', '$MODELS/hf-tiny')" 2>/dev/null
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"
PG_EXTRA_CONF="shared_preload_libraries = 'xmodal'
xmodal.preload = 'es_pre'
xmodal.service_slots = 8
xmodal.service_request_bytes = '1MB'
xmodal.batch_wait = '50ms'" "$ROOT/scripts/pg-cluster.sh" start "$CLUSTER_DIR" "$PGPORT" >/dev/null

# expect NAME OUTPUT PATTERN: the output must contain the (glob) pattern.
expect() {
    [[ $2 == *$3* ]] || fail "$1: expected *$3*, got: $2"
    echo "ok: $1"
}
worker_pid() {
    psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'xmodal encoder service'"
}
# until_true SECONDS SQL: polls until the query returns t.
until_true() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        [ "$(psql -X -At -c "$2" 2>/dev/null)" = t ] && return 0
        sleep 0.1
    done
    return 1
}
postmaster_started=$(sql "SELECT pg_postmaster_start_time()")

echo "-- the worker and xmodal.preload"
sql "SHOW xmodal.encoder" | grep -qx service || fail "xmodal.encoder is not service by default"
[ -n "$(worker_pid)" ] || fail "no xmodal encoder service in pg_stat_activity"
echo "ok: worker $(worker_pid) in pg_stat_activity"
until_true 20 "SELECT count(*) = 2 FROM xmodal.encoder_service WHERE model = 'es_pre'" \
    || fail "xmodal.preload: es_pre not loaded: $(sql "TABLE xmodal.encoder_service")"
out=$(sql "SELECT modality || ':' || device || ':' || requests FROM xmodal.encoder_service WHERE model = 'es_pre' ORDER BY modality")
expect "preloaded towers" "$out" $'image:cpu:0\ntext:cpu:0'

echo "-- 8 connections x 25 embed_text"
sql "CREATE TABLE es_out (client int, n int, v xvector)"
for c in $(seq 1 8); do
    (for n in $(seq 1 25); do
        echo "INSERT INTO es_out VALUES ($c, $n, embed_text('photo $c of thing $n', 'es_oc'));"
    done | psql -X -q -v ON_ERROR_STOP=1 >"$CLUSTER_DIR/client$c.log" 2>&1) &
done
wait
for c in $(seq 1 8); do
    [ -s "$CLUSTER_DIR/client$c.log" ] && fail "client $c: $(cat "$CLUSTER_DIR/client$c.log")"
done
out=$(sql "SELECT count(*), sum(requests), sum(inputs), bool_and(batches < requests), bool_and(pid = $(worker_pid))
           FROM xmodal.encoder_service WHERE model = 'es_oc'")
expect "one text tower, batched" "$out" "1|200|200|t|t"
echo "   $(sql "SELECT 'batches: ' || batches || ', mean batch ' || round(inputs::numeric / batches, 1) FROM xmodal.encoder_service WHERE model = 'es_oc'")"
out=$(psql -X -q -At <<'SQL' 2>&1
SET xmodal.encoder = backend;
SELECT count(*), min(1 - (v <=> embed_text('photo ' || client || ' of thing ' || n, 'es_oc'))) >= 0.9999 FROM es_out;
SELECT inferences FROM xmodal.encoder_stats() WHERE model = 'es_oc';
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND :pid
\! grep -c libonnxruntime /proc/$BACKEND/maps
SQL
)
expect "answers equal backend mode" "$out" $'200|t\n200\n'
[[ $(tail -n 1 <<< "$out") -ge 1 ]] || fail "backend mode did not run in the backend: $out"

echo "-- a connection that only embeds never maps ONNX Runtime"
out=$(psql -X -At -v models="$MODELS" <<'SQL' 2>&1
SELECT vector_dims(embed_text('a dog', 'es_oc')),
       vector_dims(embed_image(pg_read_binary_file(:'models' || '/images/rgb_37x23.png'), 'es_oc'));
SELECT device FROM xmodal.models WHERE name = 'es_oc';
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND :pid
\! grep -c libonnxruntime /proc/$BACKEND/maps
SQL
)
expect "service embeds, models.device from the service" "$out" $'16|16\ncpu\n0'

echo "-- cancel while waiting, full queue, a call larger than a slot"
pid=$(worker_pid)
kill -STOP "$pid"
out=$(psql -X -At -c "SET statement_timeout = '300ms'" -c "SELECT embed_text('waiting', 'es_oc')" 2>&1 || true)
expect "statement_timeout stops the wait" "$out" "ERROR:  canceling statement due to statement timeout"
for c in $(seq 1 8); do
    psql -X -At -c "SET statement_timeout = '300ms'" -c "SELECT embed_text('waiting $c', 'es_oc')" >/dev/null 2>&1 || true
done
for c in $(seq 1 8); do
    psql -X -At -c "SELECT vector_dims(embed_text('queued $c', 'es_oc'))" >"$CLUSTER_DIR/queued$c.log" 2>&1 &
done
until_true 10 "SELECT count(*) = 8 FROM pg_stat_activity WHERE wait_event = 'Extension' AND backend_type = 'client backend'" \
    || fail "8 callers are not waiting"
out=$(psql -X -At -c "SELECT embed_text('one too many', 'es_oc')" 2>&1 || true)
expect "full queue" "$out" "ERROR:  the xmodal encoder service has no free request slot (xmodal.service_slots = 8)"
kill -CONT "$pid"
wait
for c in $(seq 1 8); do
    [ "$(cat "$CLUSTER_DIR/queued$c.log")" = 16 ] || fail "queued caller $c: $(cat "$CLUSTER_DIR/queued$c.log")"
done
echo "ok: the queued callers were served after the worker went on"
out=$(sql "SELECT vector_dims(embed_text('after the cancels', 'es_oc'))")
expect "slots reused after cancels" "$out" "16"
echo "-- cancel while the worker holds the request"
# batch_wait is 50 ms here: a call cancelled after 2 ms has been taken by the worker, which is
# gathering or running its batch. Its answer must be dropped, never handed to the next caller
# of the same slot: each cancelled call is followed by a call whose answer is checked.
worker_before=$(worker_pid)
sql "CREATE TABLE es_after_cancel (n int, v xvector)"
for n in $(seq 1 20); do
    echo "SET statement_timeout = '2ms';"
    echo "SELECT count(*) FROM unnest(embed_texts(ARRAY(SELECT 'cancelled $n caption ' || g FROM generate_series(1, 16) g), 'es_oc'));"
    echo "RESET statement_timeout;"
    echo "INSERT INTO es_after_cancel VALUES ($n, embed_text('checked $n', 'es_oc'));"
done | psql -X -q -At > "$CLUSTER_DIR/cancel_running.log" 2>&1
cancelled=$(grep -c "canceling statement due to statement timeout" "$CLUSTER_DIR/cancel_running.log" || true)
[ "$cancelled" -ge 1 ] || fail "no call was cancelled: $(head -n 5 "$CLUSTER_DIR/cancel_running.log")"
out=$(psql -X -q -At -c "SET xmodal.encoder = backend" \
    -c "SELECT count(*), min(1 - (v <=> embed_text('checked ' || n, 'es_oc'))) >= 0.9999 FROM es_after_cancel")
expect "answers after $cancelled cancels inside the worker equal backend mode" "$out" "20|t"
[ "$(worker_pid)" = "$worker_before" ] || fail "the worker restarted during the cancels"
out=$(psql -X -At -v img="$MODELS/images/rgb_37x23.png" <<'SQL' 2>&1
SELECT pg_read_binary_file(:'img') AS png \gset
SELECT embed_image(:'png', 'es_pre') AS one \gset
SELECT coalesce(sum(requests), 0) AS before FROM xmodal.encoder_service WHERE model = 'es_pre' AND modality = 'image' \gset
SELECT count(*), min(1 - (e <=> :'one')) >= 0.9999
FROM unnest(embed_images(array_fill(:'png'::bytea, ARRAY[100]), 'es_pre')) e;
SELECT sum(requests) - :before > 1 FROM xmodal.encoder_service WHERE model = 'es_pre' AND modality = 'image';
SQL
)
expect "100 images in 1 MB slots: several consecutive requests" "$out" $'100|t\nt'

echo "-- pg_terminate_backend of the worker"
old=$(worker_pid)
sql "SELECT pg_terminate_backend($old)" >/dev/null
out=$(psql -X -At -c "SELECT vector_dims(embed_text('right after', 'es_oc'))" 2>&1 || true)
[[ $out == 16 || $out == *"ERROR:  the xmodal encoder service"* ]] || fail "call after terminate: $out"
echo "ok: the next call: $out"
until_true 15 "SELECT vector_dims(embed_text('later', 'es_oc')) = 16" || fail "no new worker serves"
new=$(worker_pid)
[ -n "$new" ] && [ "$new" != "$old" ] || fail "worker pid $old -> $new"
[ "$(sql "SELECT pg_postmaster_start_time()")" = "$postmaster_started" ] || fail "the server restarted"
echo "ok: new worker $new, postmaster not restarted"

echo "-- register again and drop, seen by the worker"
out=$(psql -X -At <<SQL 2>&1
SELECT vector_dims(embed_text('dog', 'es_m'));
SELECT xmodal.register_model('es_m', '$MODELS/openclip-tiny');
SELECT vector_dims(embed_text('dog', 'es_m'));
\! psql -X -q -c "SELECT xmodal.register_model('es_m', '$MODELS/hf-tiny', replace => true)" >/dev/null 2>&1
SELECT vector_dims(embed_text('dog', 'es_m'));
SELECT count(*) FROM xmodal.encoder_service WHERE model = 'es_m';
\! psql -X -q -c "SELECT xmodal.drop_model('es_m')" >/dev/null 2>&1
SELECT vector_dims(embed_text('dog', 'es_m'));
SQL
)
expect "re-registration seen" "$out" $'16\n24\n1\n'
expect "drop seen" "$out" 'ERROR:  model "es_m" is not registered'
until_true 5 "SELECT count(*) = 0 FROM xmodal.encoder_service WHERE model = 'es_m'" \
    || fail "the dropped model is still held: $(sql "TABLE xmodal.encoder_service")"
echo "ok: the dropped model was unloaded"

echo "-- xmodal.service_threads sizes the worker's sessions"
# worker_threads_with N: the thread count of a worker started after the setting became N, once
# it holds its three towers: es_pre's two (xmodal.preload) and es_oc's text tower.
worker_threads_with() {
    local old
    sql "ALTER SYSTEM SET xmodal.service_threads = $1" >/dev/null
    sql "SELECT pg_reload_conf()" >/dev/null
    # A new connection forks from the postmaster: once it sees N, so will the next worker.
    until_true 5 "SELECT current_setting('xmodal.service_threads') = '$1'" || fail "reload"
    old=$(worker_pid)
    sql "SELECT pg_terminate_backend($old)" >/dev/null
    until_true 15 "SELECT count(*) = 2 FROM xmodal.encoder_service WHERE model = 'es_pre' AND pid <> $old" \
        || fail "no new worker preloaded es_pre"
    sql "SELECT vector_dims(embed_text('threads', 'es_oc'))" >/dev/null
    [ "$(sql "SELECT count(*) FROM xmodal.encoder_service WHERE pid <> $old")" = 3 ] \
        || fail "the new worker does not hold three towers: $(sql "TABLE xmodal.encoder_service")"
    ls "/proc/$(worker_pid)/task" | wc -l
}
one=$(worker_threads_with 1)
four=$(worker_threads_with 4)
sql "ALTER SYSTEM RESET xmodal.service_threads" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
# ONNX Runtime's pool of N threads adds N - 1 to the calling thread: 3 more in each of 3 sessions.
[ $((four - one)) = 9 ] || fail "service_threads 1 -> 4: worker threads $one -> $four"
echo "ok: service_threads 1 -> 4 gives the worker's three sessions 9 more threads ($one -> $four)"

echo "-- the encoder regression file in service mode"
REG=$ROOT/target/it/encoder_service_regress
rm -rf "$REG"; mkdir -p "$REG/pg_test/sql" "$REG/pg_test/expected" "$REG/out"
cp "$ROOT/pg_test/sql/embed.sql" "$REG/pg_test/sql/"
cp "$ROOT/tests/encoder_service/embed.out" "$REG/pg_test/expected/"
ln -s "$ROOT/tests" "$REG/tests"      # embed.sql reads :abs_srcdir/../tests/models
ln -s "$SHARED" "$ROOT/target/it/shared" 2>/dev/null || true
PG_REGRESS="$("$PG_BIN_DIR/pg_config" --pkglibdir)/pgxs/src/test/regress/pg_regress"
chmod -R a+rwX "$REG"
if ! "$PG_REGRESS" --bindir="$PG_BIN_DIR" --host=$PGHOST --port=$PGPORT --user=postgres \
    --inputdir="$REG/pg_test" --outputdir="$REG/out" --dbname=xmodal_service_regress \
    --load-extension=xmodal embed; then
    head -c 20000 "$REG/out/regression.diffs" 2>/dev/null
    fail "embed.sql in service mode"
fi
echo "ok: embed.sql in service mode"

if grep -E "terminated by signal|PANIC|server process .* exited with exit code [^01]" "$CLUSTER_DIR/server.log"; then
    fail "a server process crashed"
fi
echo "ok: no crash in the server log"
