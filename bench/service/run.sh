#!/usr/bin/env bash
# The encoder service against per-connection sessions (xmodal.encoder = backend), in the same run
# on the same server: 1, 4 and 16 concurrent clients (pgbench, one connection each, opened at the
# start of each run) embedding captions (embed_text) or photos (embed_image) of
# ../shared/data/flickr8k-1k. Per (modality, clients), backend mode then service mode, REPEATS
# times. Reports throughput, p50/p99 latency (pgbench's per-transaction log) and the largest total
# PSS of the client backends plus the service's worker (and the worker's own part), sampled every
# 0.5 s. Then the time of a new connection's first embed_text in service mode (the model already
# held by the service).
#
#   bench/service/run.sh [MODEL_DIR] [SECONDS] [REPEATS] [THREADS] [SERVICE_THREADS]
#
# MODEL_DIR: a model directory (default: the ViT-B/32-sized export bench/embed uses,
#            target/vit-b32 in the checkout, made by `scripts/make-test-models --vit-b32 DIR`).
# SECONDS:   length of each pgbench run (default 20). REPEATS: default 1.
# THREADS:   xmodal.intra_op_threads, the threads of each backend-mode session (default 1).
# SERVICE_THREADS: xmodal.service_threads, the worker's (default 0: one per core).
# The result cache is off. Backend mode pays each connection's model load inside its run, as a
# real new connection does.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${1:-$ROOT/target/vit-b32}
SECONDS_PER_RUN=${2:-20}
REPEATS=${3:-1}
THREADS=${4:-1}
SERVICE_THREADS=${5:-0}
DATA=${XMODAL_SHARED:-$(cd "$ROOT/.." && pwd)/shared}/data/flickr8k-1k
PG_BIN=${PG_BIN:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin}
[ -d "$DATA/images" ] || { echo "SKIP: $DATA not found"; exit 0; }
[ -d "$MODEL" ] || { echo "no model at $MODEL (see the header of this script)"; exit 1; }
MODEL=$(cd "$MODEL" && pwd)

CLUSTER=$ROOT/target/bench-service
OUT=$ROOT/target/bench-service-out
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER"
rm -rf "$CLUSTER" "$OUT"; mkdir -p "$OUT"; chmod a+rwx "$OUT"
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres
PGPORT=$(PG_EXTRA_CONF="shared_preload_libraries = 'xmodal'
max_connections = 40
xmodal.device = 'cpu'
xmodal.intra_op_threads = $THREADS
xmodal.service_threads = $SERVICE_THREADS
xmodal.cache_entries = 0" "$ROOT/scripts/pg-cluster.sh" start "$CLUSTER")
export PGPORT
trap '"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER"' EXIT

echo "# $(date -u '+%F %H:%M') $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, ${SECONDS_PER_RUN}s per run, repeats=$REPEATS, intra_op_threads=$THREADS, service_threads=$SERVICE_THREADS, model $MODEL"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
psql -X -q -v ON_ERROR_STOP=1 -At <<SQL
CREATE EXTENSION xmodal;
SET xmodal.encoder = backend;
SELECT xmodal.register_model('bench', '$MODEL');
CREATE TABLE photos AS
    SELECT row_number() OVER (ORDER BY name) AS id, pg_read_binary_file('$DATA/images/' || name) AS bytes
    FROM pg_ls_dir('$DATA/images') AS name ORDER BY name LIMIT 200;
CREATE TEMP TABLE all_captions (image text, caption text);
\copy all_captions FROM '$DATA/captions.txt' WITH (FORMAT csv, HEADER)
CREATE TABLE captions AS
    SELECT row_number() OVER () AS id, caption FROM all_captions LIMIT 1000;
SQL
cat > "$OUT/text.sql" <<'SQL'
\set id random(1, 1000)
SELECT embed_text(caption, 'bench') FROM captions WHERE id = :id;
SQL
cat > "$OUT/image.sql" <<'SQL'
\set id random(1, 200)
SELECT embed_image(bytes, 'bench') FROM photos WHERE id = :id;
SQL

# Total PSS (kB) of the client backends and the service's worker, now, then the worker's own.
pss() {
    local rows pid type total=0 worker=0 kb
    rows=$(psql -X -At -F ' ' -c "SELECT pid, backend_type = 'xmodal encoder service' FROM pg_stat_activity WHERE backend_type IN ('client backend', 'xmodal encoder service') AND pid <> pg_backend_pid()")
    while read -r pid type; do
        [ -n "$pid" ] || continue
        kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
        [ "$type" = t ] && worker=${kb:-0}
    done <<< "$rows"
    echo "$total $worker"
}

run() { # MODE MODALITY CLIENTS -> "tps p50_ms p99_ms pss_mb worker_pss_mb"
    local mode=$1 modality=$2 clients=$3 log=$OUT/$1-$2-$3 max sampler
    rm -f "$log".*
    # A fresh worker holding nothing: service mode loads the model once inside the run, and
    # backend mode's sum holds no idle copy from the previous run.
    psql -X -q -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'xmodal encoder service'" >/dev/null
    sleep 2
    (while true; do pss > "$log.pss.$(date +%s%N)"; sleep 0.5; done) &
    sampler=$!
    PGOPTIONS="-c xmodal.encoder=$mode" "$PG_BIN/pgbench" -n -c "$clients" -j "$clients" \
        -T "$SECONDS_PER_RUN" -f "$OUT/$modality.sql" -l --log-prefix="$log" postgres \
        > "$log.out" 2>&1 || { cat "$log.out"; exit 1; }
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    max=$(cat "$log".pss.* | sort -n | tail -n 1)   # the sample with the largest total
    # pgbench log lines: client_id transaction_no time(us) script_no time_epoch time_us
    cat "$log".[0-9]* | awk '{ print $3 / 1000 }' | sort -n | awk -v secs="$SECONDS_PER_RUN" -v pss="$max" '
        { lat[NR] = $1 } END {
            split(pss, kb, " ")
            printf "%.1f %.1f %.1f %.0f %.0f\n", NR / secs, lat[int(NR * 0.5) + 1], lat[int(NR * 0.99) + 1], kb[1] / 1024, kb[2] / 1024 }'
}

printf "| modality | clients | mode | per s | p50 ms | p99 ms | PSS MB | worker's |\n|---|---|---|---|---|---|---|---|\n"
for r in $(seq 1 "$REPEATS"); do
    for modality in text image; do
        for clients in 1 4 16; do
            for mode in backend service; do
                read -r tps p50 p99 mb worker < <(run $mode $modality $clients)
                echo "| $modality | $clients | $mode | $tps | $p50 | $p99 | $mb | $worker |"
            done
        done
    done
done
echo
echo "batches: $(psql -X -At -c "SELECT string_agg(modality || ' ' || requests || ' requests in ' || batches || ' batches', ', ') FROM xmodal.encoder_service")"
# A new connection's first embed_text, the model held by the service (warmed by another one).
psql -X -q -At -c "SELECT embed_text('warm', 'bench') IS NOT NULL" >/dev/null
first=$(psql -X -At -c "SELECT 1" -c "\\timing on" -c "SELECT embed_text('a dog on the beach', 'bench') IS NOT NULL" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
echo "first embed_text of a new connection (service): $first ms"
