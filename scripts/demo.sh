#!/usr/bin/env bash
# The whole product in one command: set-up if needed, build and install xmodal (release), start
# a throw-away cluster in ./.pgdata on a free local port (never the system cluster), load a
# product catalogue with photos, register a model, embed every photo in the server, build an
# xhnsw index with filter columns, and run three example queries. Embeddings run on the encoder
# service (xmodal in shared_preload_libraries). Safe and fast to re-run: the
# data and embeddings are kept when the catalogue and the model did not change.
#
#   XMODAL_MODEL_DIR   a real CLIP model directory (see README: "Models"); default: the project's
#                      tiny test model, whose random weights make the rankings meaningless
#   XMODAL_DEMO_ROWS   how many products to load (default: all); the dresses are always loaded
#   XMODAL_DEMO_PGDATA where the cluster lives (default ./.pgdata)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/pg-env.sh   # PG_MAJOR (15 or 18), PG_CONFIG, PG_BIN, PGRX_FEATURES
DATA_DIR=${XMODAL_DEMO_PGDATA:-$ROOT/.pgdata}
ROWS=${XMODAL_DEMO_ROWS:-0}
BATCH=32
say() { echo "demo: $*"; }

[ "${XMODAL_SKIP_SETUP:-0}" = 1 ] || scripts/setup.sh
say "building and installing xmodal (release)"
install_flags=(--release --pg-config "$PG_CONFIG" "${PGRX_FEATURES[@]}")
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
cargo pgrx install "${install_flags[@]}" >/dev/null
# The encoder service: one worker holds the model and batches every connection's requests.
PORT=$(PG_EXTRA_CONF="shared_preload_libraries = 'xmodal'" scripts/pg-cluster.sh start "$DATA_DIR")
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
sql() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# --- catalogue: the shared product photos, or pictures generated here
CATALOGUE=${XMODAL_SHARED:-$(cd .. && pwd)/shared}/data/fashion-products
EXT=jpg
if [ ! -f "$CATALOGUE/styles_subset.csv" ]; then
    CATALOGUE=$ROOT/target/demo-catalogue
    EXT=bmp
    [ -f "$CATALOGUE/styles_subset.csv" ] || { say "no ../shared catalogue: generating pictures"; python3 scripts/demo-catalogue.py "$CATALOGUE" 300; }
fi

# --- model
MODEL_DIR=${XMODAL_MODEL_DIR:-$ROOT/tests/models/openclip-tiny}
MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
if [ -z "${XMODAL_MODEL_DIR:-}" ]; then
    say "WARNING: no XMODAL_MODEL_DIR: using the project's tiny test model. Its weights are random,"
    say "WARNING: so the rankings below show the plumbing, not meaning. See README: Models."
fi

sql -c "CREATE EXTENSION IF NOT EXISTS xmodal"
state="$CATALOGUE $EXT $ROWS $MODEL_DIR"
unchanged=f
if [ "$(sql -c "SELECT to_regclass('demo_state') IS NOT NULL")" = t ]; then
    unchanged=$(sql -c "SELECT (SELECT state FROM demo_state) = '$state' AND NOT EXISTS (SELECT 1 FROM products WHERE emb IS NULL)")
fi
if [ "$unchanged" = t ]; then
    say "catalogue, model and embeddings unchanged since the last run: reusing them"
else
    say "loading the catalogue from $CATALOGUE"
    sql <<SQL
DROP TABLE IF EXISTS products, demo_state;
CREATE TEMP TABLE styles (id bigint, gender text, mastercategory text, subcategory text, articletype text,
    basecolour text, season text, year text, usage text, productdisplayname text);
\copy styles FROM '$CATALOGUE/styles_subset.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE products (id bigint PRIMARY KEY, gender text, articletype text, basecolour text,
    name text, photo bytea, emb xvector);
INSERT INTO products
SELECT id, gender, articletype, basecolour, productdisplayname,
       pg_read_binary_file('$CATALOGUE/images/' || id || '.$EXT')
FROM (SELECT *, row_number() OVER (ORDER BY id) AS n FROM styles) s
WHERE $ROWS = 0 OR n <= $ROWS OR articletype = 'Dresses';
SELECT xmodal.register_model('demo', '$MODEL_DIR', replace => true);
CREATE TABLE demo_state (state text);
SQL
    say "embedding $(sql -c "SELECT count(*) FROM products") photos in the server (embed_images, $BATCH per batch)"
    # One session for the whole loop (the model loads once per connection); a commit per batch.
    sql <<SQL
CREATE OR REPLACE PROCEDURE pg_temp.embed_all(batch int) LANGUAGE plpgsql AS \$\$
DECLARE
    total int := (SELECT count(*) FROM products WHERE emb IS NULL);
    done int := 0;
    n int;
    started timestamptz := clock_timestamp();
    rate float8;
BEGIN
    LOOP
        WITH b AS (SELECT id, photo FROM products WHERE emb IS NULL ORDER BY id LIMIT batch),
             e AS (SELECT unnest(array_agg(id ORDER BY id)) AS id,
                          unnest(embed_images(array_agg(photo ORDER BY id), 'demo')) AS emb FROM b)
        UPDATE products p SET emb = e.emb FROM e WHERE p.id = e.id;
        GET DIAGNOSTICS n = ROW_COUNT;
        EXIT WHEN n = 0;
        COMMIT;
        done := done + n;
        rate := done / greatest(extract(epoch FROM clock_timestamp() - started), 0.001);
        RAISE NOTICE 'embedded %/% photos, % rows/s, ETA % s', done, total, round(rate), round((total - done) / rate);
    END LOOP;
END \$\$;
CALL pg_temp.embed_all($BATCH);
SQL
    sql -c "INSERT INTO demo_state VALUES ('$state')"
fi

say "building the xhnsw index (cosine distance; gender and article type as filter columns)"
sql -c "DROP INDEX IF EXISTS products_emb" -c "CREATE INDEX products_emb ON products USING xhnsw (emb xvector_cosine_ops, gender, articletype)" -c "ANALYZE products"

run() { echo; say "$1"; echo "    $2"; psql -X -v ON_ERROR_STOP=1 -c "$2"; }
QUERY_ID=$(sql -c "SELECT id FROM products WHERE articletype = 'Dresses' ORDER BY id LIMIT 1")
run "1. text -> image: the photos closest to a sentence" \
    "SELECT id, gender, articletype, name FROM products ORDER BY emb <=> embed_text('a red summer dress', 'demo') LIMIT 5;"
run "2. image -> image: products that look like product $QUERY_ID" \
    "SELECT id, gender, articletype, name FROM products ORDER BY emb <=> (SELECT emb FROM products WHERE id = $QUERY_ID) LIMIT 5;"
run "3. hybrid: a sentence, only women's dresses (filter checked inside the index)" \
    "SELECT id, gender, articletype, name FROM products WHERE gender = 'Women' AND articletype = 'Dresses' ORDER BY emb <=> embed_text('a red summer dress', 'demo') LIMIT 5;"

echo
say "connect with:  psql postgresql://postgres@127.0.0.1:$PORT/postgres"
say "stop with:     scripts/pg-cluster.sh stop $DATA_DIR"
