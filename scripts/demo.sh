#!/usr/bin/env bash
# The demo: set-up if needed, build and install xmodal (release), start a throw-away cluster in
# ./.pgdata on a free local port (never the system cluster), load sample data, run example
# queries, and print how to connect and how to stop. Safe and fast to re-run.
#   XMODAL_DEMO_ROWS   rows of sample data (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${XMODAL_DEMO_ROWS:-20000}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR:-15}/bin/pg_config}
DATA=$PWD/.pgdata

scripts/setup.sh
echo "demo: building and installing xmodal (release)"
install_flags=(--release --pg-config "$PG_CONFIG")
[ "$(id -u)" = 0 ] || install_flags+=(--sudo)
cargo pgrx install "${install_flags[@]}" >/dev/null
PORT=$(scripts/pg-cluster.sh start "$DATA")
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql() { command psql -X -v ON_ERROR_STOP=1 "$@"; }

echo "demo: loading $ROWS sample rows"
psql -q <<SQL
DROP EXTENSION IF EXISTS xmodal CASCADE;
CREATE EXTENSION xmodal;
CREATE TABLE items (id bigint PRIMARY KEY, category text, emb xvector(64));
-- Ten clusters of random 64-d vectors, one category each.
INSERT INTO items
SELECT i, 'category-' || (i % 10),
       array_to_xvector(ARRAY(SELECT (i % 10) + random() - 0.5 FROM generate_series(1, 64)), 64, true)
FROM generate_series(1, $ROWS) i;
ANALYZE items;
SQL

echo
echo "demo: the 5 nearest neighbours of item 42 (cosine distance)"
psql -c "SELECT id, category, round((emb <=> (SELECT emb FROM items WHERE id = 42))::numeric, 4) AS distance
         FROM items ORDER BY emb <=> (SELECT emb FROM items WHERE id = 42) LIMIT 5;"
echo "demo: nearest to a literal vector, filtered by category (L2 distance)"
psql -c "SELECT id, category, round((emb <-> array_fill(3.0::real, ARRAY[64])::xvector)::numeric, 3) AS distance
         FROM items WHERE category = 'category-3'
         ORDER BY emb <-> array_fill(3.0::real, ARRAY[64])::xvector LIMIT 5;"
echo "demo: centroid of each category (avg over xvector), first 4 dimensions"
psql -c "SELECT category, (avg(emb)::real[])[1:4] AS centroid_head FROM items GROUP BY category ORDER BY category LIMIT 4;"

echo
echo "demo: connect with:  psql postgresql://postgres@127.0.0.1:$PORT/postgres"
echo "demo: stop with:     scripts/pg-cluster.sh stop $DATA"
