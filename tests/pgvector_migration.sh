#!/usr/bin/env bash
# pgvector and xmodal side by side: pgvector 0.8.6 (built from ../shared/baselines) and xmodal
# install into one schema without a name clash, a pgvector column moves to xvector with the
# README's ALTER TABLE, every value survives bit for bit (its binary form before, as pgvector
# sends it, equals its binary form after, as xmodal sends it), and an xhnsw index on
# the migrated column answers a nearest-neighbour query like the pgvector column does.
source "$(dirname "$0")/lib.sh"
baselines=$SHARED/baselines
if [ ! -x "$baselines/install-pgvector.sh" ]; then
    echo "SKIP: $baselines/install-pgvector.sh not found (this test builds pgvector from ../shared)"
    exit 77
fi
PG_CONFIG_BIN=${PG_CONFIG:-$PG_BIN_DIR/pg_config}
# PostgreSQL 16+ (the wheel's 18) compiles with flags gcc 12 rejects: build pgvector with clang
# there (scripts/pg-env.sh sets CC); MAKEFLAGS overrides the CC of PostgreSQL's Makefile.global.
MAKEFLAGS=${CC:+CC=$CC} "$baselines/install-pgvector.sh" "$PG_CONFIG_BIN"

start_cluster pgvector_migration       # creates xmodal
sql "CREATE EXTENSION vector"          # ... and pgvector beside it, same schema
sql "DROP EXTENSION xmodal"
sql "DROP EXTENSION vector"
sql "CREATE EXTENSION vector"          # the other order as well
sql "CREATE EXTENSION xmodal"
echo "ok: CREATE EXTENSION vector; CREATE EXTENSION xmodal in one schema (both orders)"

# Both types' operators resolve on their own type.
[ "$(sql "SELECT '[1,2]'::vector || '[3]'")" = "[1,2,3]" ] || fail "vector || vector"
[ "$(sql "SELECT '[1,2]'::xvector || '[3]'")" = "[1,2,3]" ] || fail "xvector || xvector"
[ "$(sql "SELECT pg_typeof('[1,2]'::xvector <+> '[3,5]')::text || ' ' || ('[1,2]'::xvector <+> '[3,5]')")" = "double precision 5" ] \
    || fail "xvector <+>"
[ "$(sql "SELECT '[1,2]'::halfvec <-> '[4,6]'")" = "5" ] || fail "halfvec <->"
[ "$(sql "SELECT '[1,2]'::xhalfvec <-> '[4,6]'")" = "5" ] || fail "xhalfvec <->"

# A pgvector table: 2000 rows of 16 dimensions (awkward values: negative zero, tiny, huge).
sql "CREATE TABLE items (id int PRIMARY KEY, emb vector(16))"
sql "INSERT INTO items SELECT i, ARRAY(SELECT (sin(i * j) * 10 ^ ((i + j) % 7 - 3))::real
                                       FROM generate_series(1, 16) j)::vector(16)
     FROM generate_series(1, 2000) i"
sql "INSERT INTO items VALUES (2001, '[-0,1e-38,3.4e38,-3.4e38,1.5,2,3,4,5,6,7,8,9,10,11,12]')"
sql "CREATE INDEX items_hnsw ON items USING hnsw (emb vector_l2_ops)"
sql "CREATE TABLE before AS SELECT id, vector_send(emb) AS bytes FROM items"
query="[0.5,-1,2,0,0,1,1,1,0,0,0,0,3,0,0,1]"
sql "SET enable_indexscan = off; CREATE TABLE exact_before AS SELECT id FROM items ORDER BY emb <-> '$query' LIMIT 10"

# The migration, exactly as the README shows it.
sql "DROP INDEX items_hnsw"
sql "ALTER TABLE items ALTER COLUMN emb TYPE xvector(16) USING emb::text::xvector(16)"
sql "CREATE INDEX items_xhnsw ON items USING xhnsw (emb xvector_l2_ops)"

[ "$(sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'emb'")" = "xvector(16)" ] \
    || fail "column type after ALTER"
diff_rows=$(sql "SELECT count(*) FROM before b FULL JOIN items i USING (id) WHERE b.bytes IS DISTINCT FROM xvector_send(i.emb)")
[ "$diff_rows" = 0 ] || fail "$diff_rows values changed in the migration"
echo "ok: 2001 values migrated, binary forms identical to pgvector's"

# Exact answers agree across the two types, and the index finds them.
exact_after=$(sql "SET enable_indexscan = off; SELECT string_agg(id::text, ',' ORDER BY emb <-> '$query') FROM (SELECT id, emb FROM items ORDER BY emb <-> '$query' LIMIT 10) s")
exact_before=$(sql "SELECT string_agg(id::text, ',') FROM exact_before")
[ "$(echo "$exact_after" | tr , '\n' | sort -n)" = "$(echo "$exact_before" | tr , '\n' | sort -n)" ] \
    || fail "exact top 10 differs: xvector $exact_after, vector $exact_before"
plan=$(sql "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <-> '$query' LIMIT 10")
echo "$plan" | grep -q "Index Scan using items_xhnsw" || fail "the query does not use the xhnsw index: $plan"
found=$(sql "SET enable_seqscan = off; SELECT count(*) FROM (SELECT id FROM items ORDER BY emb <-> '$query' LIMIT 10) a
             JOIN exact_before USING (id)")
assert_ge "index recall@10 after migration" "$found" 9
