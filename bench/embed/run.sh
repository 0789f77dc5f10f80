#!/usr/bin/env bash
# Throughput and latency of embed_image / embed_text and their batch forms (embed_images,
# embed_texts) inside PostgreSQL, next to Python onnxruntime on the same ONNX files with PIL
# preprocessing (bench/embed/python_ort.py), on the photos and captions of
# ../shared/data/flickr8k-1k. Each (modality, batch) is measured on one side, then at once on the
# other (so that both see the same load of a shared machine), REPEATS times; the JSON line of
# every run is printed, then a table of the medians.
#
#   bench/embed/run.sh [MODEL_DIR] [N] [THREADS] [REPEATS]
#
# MODEL_DIR: a ViT-B/32-sized OpenCLIP export with random weights (default target/vit-b32 in the
#            checkout; make one with `python scripts/make-test-models --vit-b32 DIR --skip-fixtures`).
# N:         photos and captions (first caption of each photo) to embed (default 1000).
# THREADS:   ONNX Runtime intra-op threads on both sides (default: the number of cores).
# REPEATS:   passes over the four (modality, batch) pairs (default 3).
# Environment: PYTHON (a Python with onnxruntime, pillow, open_clip; default python3), PG_BIN (the server the extension is installed in).
# Per call, SQL timing is taken inside the server (clock_timestamp around each call in PL/pgSQL),
# so it includes argument passing and building the xvector but no client round trip; the
# preprocessing share comes from xmodal.encoder_stats(). The result cache is off.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${1:-$ROOT/target/vit-b32}
N=${2:-1000}
THREADS=${3:-$(nproc)}
REPEATS=${4:-3}
PYTHON=${PYTHON:-python3}
DATA=$(cd "$ROOT/.." && pwd)/shared/data/flickr8k-1k
[ -d "$DATA/images" ] || { echo "SKIP: $DATA not found"; exit 0; }
[ -f "$MODEL/visual.onnx" ] || { echo "no model at $MODEL (see the header of this script)"; exit 1; }
MODEL=$(cd "$MODEL" && pwd)

CLUSTER=$ROOT/target/bench-embed
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER"
rm -rf "$CLUSTER"
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres
PGPORT=$("$ROOT/scripts/pg-cluster.sh" start "$CLUSTER")
export PGPORT
trap '"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER"' EXIT
# The server (user postgres) reads the model and the photos where they are.
runuser -u postgres -- test -r "$MODEL/visual.onnx" -a -r "$DATA/captions.txt" \
    || { echo "user postgres cannot read $MODEL or $DATA"; exit 1; }

echo "# $(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, N=$N, threads=$THREADS, repeats=$REPEATS, model $MODEL"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
psql -X -q -v ON_ERROR_STOP=1 -At <<SQL
CREATE EXTENSION xmodal;
CREATE TABLE photos AS
    SELECT name, pg_read_binary_file('$DATA/images/' || name) AS bytes
    FROM pg_ls_dir('$DATA/images') AS name ORDER BY name LIMIT $N;
CREATE TEMP TABLE all_captions (image text, caption text);
\copy all_captions FROM '$DATA/captions.txt' WITH (FORMAT csv, HEADER)
CREATE TABLE captions AS
    SELECT row_number() OVER (ORDER BY min(ord)) AS id, (array_agg(caption ORDER BY ord))[1] AS caption
    FROM (SELECT image, caption, row_number() OVER () AS ord FROM all_captions) c
    GROUP BY image ORDER BY min(ord) LIMIT $N;
ALTER TABLE photos ADD COLUMN id serial;

-- Median and total time of the calls embedding rows in groups of \`batch\`.
CREATE FUNCTION bench(modality text, batch int) RETURNS json LANGUAGE plpgsql AS \$\$
DECLARE
    t0 timestamptz;
    calls float8[] := '{}';
    n int := 0;
    images bytea[];
    texts text[];
BEGIN
    PERFORM xmodal.encoder_stats_reset();
    IF modality = 'image' THEN
        FOR images IN SELECT array_agg(bytes ORDER BY id) FROM photos
                      GROUP BY (id - 1) / batch ORDER BY min(id) LOOP
            t0 := clock_timestamp();
            IF batch = 1 THEN PERFORM embed_image(images[1], 'vit');
            ELSE PERFORM embed_images(images, 'vit');
            END IF;
            calls := calls || extract(epoch FROM clock_timestamp() - t0)::float8;
            n := n + cardinality(images);
        END LOOP;
    ELSE
        FOR texts IN SELECT array_agg(caption ORDER BY id) FROM captions
                     GROUP BY (id - 1) / batch ORDER BY min(id) LOOP
            t0 := clock_timestamp();
            IF batch = 1 THEN PERFORM embed_text(texts[1], 'vit');
            ELSE PERFORM embed_texts(texts, 'vit');
            END IF;
            calls := calls || extract(epoch FROM clock_timestamp() - t0)::float8;
            n := n + cardinality(texts);
        END LOOP;
    END IF;
    RETURN (SELECT json_build_object(
        'side', 'xmodal (SQL)', 'modality', modality, 'batch', batch, 'items', n,
        'seconds', round(sum(c)::numeric, 3), 'items_per_s', round((n / sum(c))::numeric, 2),
        'median_ms_per_call',
            round((percentile_cont(0.5) WITHIN GROUP (ORDER BY c) * 1000)::numeric, 1),
        'preprocess_share', (SELECT round((sum(preprocess_ms) / sum(total_ms))::numeric, 3)
                             FROM xmodal.encoder_stats()))
        FROM unnest(calls) c);
END \$\$;

SQL

# One connection for the SQL side (fds 3, 4), one Python process for the other (fds 5, 6), both
# kept for all runs, talked to through FIFOs.
pipes=$(mktemp -d)
mkfifo "$pipes"/sql.in "$pipes"/sql.out "$pipes"/py.in "$pipes"/py.out
psql -X -q -At -v ON_ERROR_STOP=1 < "$pipes"/sql.in > "$pipes"/sql.out &
exec 3> "$pipes"/sql.in 4< "$pipes"/sql.out
"$PYTHON" "$ROOT/bench/embed/python_ort.py" "$MODEL" "$DATA/images" "$DATA/captions.txt" "$N" \
    "$THREADS" < "$pipes"/py.in > "$pipes"/py.out &
exec 5> "$pipes"/py.in 6< "$pipes"/py.out
cat >&3 <<SQL
SET xmodal.device = cpu;
SET xmodal.intra_op_threads = $THREADS;
SET xmodal.cache_entries = 0;
\o /dev/null
SELECT xmodal.register_model('vit', '$MODEL');
SELECT embed_image(bytes, 'vit'), embed_text('warm up', 'vit') FROM photos LIMIT 1;
\o
SQL
results=$pipes/results
for _ in $(seq "$REPEATS"); do
    for run in "image 1" "text 1" "image 32" "text 32"; do
        read -r modality batch <<< "$run"
        echo "SELECT bench('$modality', $batch);" >&3
        read -r line <&4 && echo "$line" | tee -a "$results"
        echo "$run" >&5
        read -r line <&6 && echo "$line" | tee -a "$results"
    done
done
exec 3>&- 5>&-
wait
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PYTHON" - "$results" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault((r["modality"], r["batch"], r["side"]), []).append(r)
print("| modality | batch | side | items/s | ms per call | preprocessing share |")
print("|---|---:|---|---:|---:|---:|")
for (modality, batch, side), rs in sorted(runs.items()):
    med = lambda k: statistics.median(r[k] for r in rs)
    print(f"| {modality} | {batch} | {side} | {med('items_per_s'):.2f} | "
          f"{med('median_ms_per_call'):.1f} | {100 * med('preprocess_share'):.1f}% |")
PY
rm -rf "$pipes"
