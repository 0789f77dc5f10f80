#!/usr/bin/env bash
# The encoder service on a GPU (prepared, not yet run: our machines have no GPU). Starts a cluster
# with xmodal preloaded, xmodal.device = cuda and the GPU build of ONNX Runtime, registers
# MODEL_DIR, and reports images/s and texts/s end to end through SQL at 1, 16 and 64 clients
# (pgbench, SECONDS each), the device each tower reports (xmodal.encoder_service), the mean
# batch, and the GPU memory in use (nvidia-smi).
#
#   bench/gpu/run.sh MODEL_DIR [SECONDS]
#
# Needs: xmodal installed, ONNX Runtime GPU at $XMODAL_ORT_GPU (default
# /usr/local/lib/xmodal-gpu/libonnxruntime.so.1.31.1, scripts/get-onnxruntime.sh --gpu) with the
# CUDA 13 libraries on LD_LIBRARY_PATH, and ../shared/data/flickr8k-1k.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$(cd "${1:?MODEL_DIR}" && pwd)
SECONDS_PER_RUN=${2:-20}
ORT=${XMODAL_ORT_GPU:-/usr/local/lib/xmodal-gpu/libonnxruntime.so.1.31.1}
DATA=${XMODAL_SHARED:-$(cd "$ROOT/.." && pwd)/shared}/data/flickr8k-1k
PG_BIN=${PG_BIN:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin}
[ -d "$DATA/images" ] || { echo "SKIP: $DATA not found"; exit 0; }
[ -f "$ORT" ] || { echo "no GPU ONNX Runtime at $ORT"; exit 1; }
CLUSTER=$ROOT/target/bench-gpu
OUT=$ROOT/target/bench-gpu-out
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER"
rm -rf "$CLUSTER" "$OUT"; mkdir -p "$OUT"; chmod a+rwx "$OUT"
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres
PGPORT=$(PG_EXTRA_CONF="shared_preload_libraries = 'xmodal'
max_connections = 100
xmodal.device = 'cuda'
xmodal.onnxruntime_library = '$ORT'
xmodal.max_batch = 256
xmodal.service_slots = 128
xmodal.service_request_bytes = '8MB'
xmodal.cache_entries = 0" "$ROOT/scripts/pg-cluster.sh" start "$CLUSTER")
export PGPORT
trap '"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER"' EXIT
psql -X -q -v ON_ERROR_STOP=1 -At <<SQL
CREATE EXTENSION xmodal;
SELECT xmodal.register_model('bench', '$MODEL');
CREATE TABLE photos AS
    SELECT row_number() OVER (ORDER BY name) AS id, pg_read_binary_file('$DATA/images/' || name) AS bytes
    FROM pg_ls_dir('$DATA/images') AS name ORDER BY name LIMIT 1000;
CREATE TEMP TABLE all_captions (image text, caption text);
\copy all_captions FROM '$DATA/captions.txt' WITH (FORMAT csv, HEADER)
CREATE TABLE captions AS SELECT row_number() OVER () AS id, caption FROM all_captions LIMIT 5000;
SELECT embed_text('warm', 'bench') IS NOT NULL, embed_image(bytes, 'bench') IS NOT NULL FROM photos LIMIT 1;
SQL
printf '\\set id random(1, 5000)\nSELECT embed_text(caption, '"'"'bench'"'"') FROM captions WHERE id = :id;\n' > "$OUT/text.sql"
printf '\\set id random(1, 1000)\nSELECT embed_image(bytes, '"'"'bench'"'"') FROM photos WHERE id = :id;\n' > "$OUT/image.sql"
echo "| modality | clients | per s |"; echo "|---|---|---|"
for modality in image text; do
    for clients in 1 16 64; do
        tps=$("$PG_BIN/pgbench" -n -c "$clients" -j "$((clients < 16 ? clients : 16))" -T "$SECONDS_PER_RUN" \
            -f "$OUT/$modality.sql" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "| $modality | $clients | $tps |"
    done
done
psql -X -c "SELECT model, modality, device, requests, inputs, batches, round(inputs::numeric / batches, 1) AS mean_batch FROM xmodal.encoder_service"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
