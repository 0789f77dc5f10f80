#!/usr/bin/env bash
# xmodal on a Citus cluster: a coordinator and two workers on 127.0.0.1, Citus 14.0.1 built from
# ../shared/citus into the PostgreSQL under test (16-18; skipped on 15, which Citus 14 lacks).
#   - CREATE EXTENSION xmodal on the coordinator reaches the workers; an xhnsw index with a
#     filter column on a hash-distributed table reaches every shard;
#   - top-k with and without a filter is pushed to every shard as an xhnsw index scan and merged
#     on the coordinator: recall@10 against an exact scan >= 0.95;
#   - a query naming one tenant is a router plan: one task, that shard's xhnsw index;
#   - INSERT (also INSERT ... SELECT array[...]), COPY binary, UPDATE, DELETE and VACUUM keep the
#     answers exact-equal to a scan; a shard move keeps them and index_check is clean there;
#   - ORDER BY emb <=> (SELECT embed_text(...)) encodes once per query, on the coordinator (the
#     encoder service's counters on every node); the workers need no model, and a bare
#     embed_text(...), which Citus pushes to the shards, is refused there with a clear ERROR;
#   - a model registered on every node (run_command_on_all_nodes, superuser only): a tenant's
#     query encodes once on its worker, in either form; a bare call encodes on the shards, at
#     most once per shard, and answers as the subquery form;
#   - a reference table with an xhnsw index answers on every node.
source "$(dirname "$0")/lib.sh"
[ "$PG_MAJOR" -ge 16 ] && [ "$PG_MAJOR" -le 18 ] || skip "Citus 14 supports PostgreSQL 16-18, this is $PG_MAJOR"
TARBALL=$SHARED/citus/citus-14.0.1.tar.gz
[ -f "$TARBALL" ] || skip "$TARBALL not found (the Citus source comes from ../shared/citus)"
need_shared ann-small
LIBRARY=/usr/local/lib/xmodal/libonnxruntime.so.1.31.1
[ -f "$LIBRARY" ] || skip "$LIBRARY not found (scripts/get-onnxruntime.sh)"
started=$SECONDS

# Citus is built into the tree under test, once: it is test-only (AGPL) and never shipped.
if [ ! -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
    build=$ROOT/target/citus-build-$PG_MAJOR
    rm -rf "$build"; mkdir -p "$build"
    tar -xzf "$TARBALL" -C "$build"
    echo "-- building Citus into $("$PG_CONFIG" --pkglibdir)"
    (cd "$build"/citus-* && CC=clang ./configure PG_CONFIG="$PG_CONFIG" --without-libcurl --without-lz4 \
        --without-zstd && make -j2 && make install) > "$build.log" 2>&1 || { tail -n 30 "$build.log"; fail "Citus build"; }
fi

# Three clusters; the coordinator's settings are exported for sql/psql, the workers are named.
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=postgres
nodes=(coordinator worker1 worker2)
declare -A PORT
stop_all() { for n in "${nodes[@]}"; do "$ROOT/scripts/pg-cluster.sh" stop "$ROOT/target/it/citus-$n"; done; }
trap stop_all EXIT
for n in "${nodes[@]}"; do
    dir=$ROOT/target/it/citus-$n
    "$ROOT/scripts/pg-cluster.sh" stop "$dir"; rm -rf "$dir"
    PORT[$n]=$(PG_EXTRA_CONF="shared_preload_libraries = 'citus,xmodal'
wal_level = logical
citus.shard_count = 8
citus.log_remote_commands = off" "$ROOT/scripts/pg-cluster.sh" start "$dir")
    PGPORT=${PORT[$n]} sql "CREATE EXTENSION citus"
done
export PGPORT=${PORT[coordinator]}
# on NODE SQL: run on one node, seeing its shards (Citus hides them from clients by default).
on() {
    PGPORT=${PORT[$1]} PGOPTIONS="${PGOPTIONS:-} -c citus.override_table_visibility=off" \
        psql -X -q -v ON_ERROR_STOP=1 -At -c "$2"
}
sql "SELECT citus_set_coordinator_host('127.0.0.1', $PGPORT)" >/dev/null
for n in worker1 worker2; do sql "SELECT citus_add_node('127.0.0.1', ${PORT[$n]})" >/dev/null; done
sql "CREATE EXTENSION xmodal"
for n in worker1 worker2; do
    [ "$(on $n "SELECT count(*) FROM pg_extension WHERE extname = 'xmodal'")" = 1 ] || fail "xmodal did not reach $n"
done
echo "ok: CREATE EXTENSION xmodal reached both workers"

# bigann10k: 10,000 x 128, spread over 20 tenants; tenant and label = id % 7 are filter columns.
DATA=$SHARED/data/ann-small
sql "CREATE TABLE items (tenant int NOT NULL, id int NOT NULL, label int NOT NULL, v xvector(128), PRIMARY KEY (tenant, id))"
sql "SELECT create_distributed_table('items', 'tenant')" >/dev/null
python3 "$ROOT/tests/vecs2tsv.py" "$DATA/bigann10k_base.bvecs" \
    | awk -F'\t' -v OFS='\t' '{ print $1 % 20, $1, $1 % 7, $2 }' \
    | psql -X -q -v ON_ERROR_STOP=1 -c "\\copy items FROM STDIN"
sql "CREATE INDEX items_v ON items USING xhnsw (v xvector_l2_ops, tenant, label)"
sql "ANALYZE items"
shards=$(sql "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'items'::regclass")
indexes=0
for n in worker1 worker2; do
    indexes=$((indexes + $(on $n "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'xhnsw' AND c.relname LIKE 'items_v_%'")))
done
[ "$indexes" = "$shards" ] || fail "$indexes xhnsw shard indexes for $shards shards"
echo "ok: the xhnsw index reached all $shards shards"

# The first 50 queries (they are base rows: each is its own nearest neighbour).
mapfile -t QUERIES < <(python3 "$ROOT/tests/vecs2tsv.py" "$DATA/bigann10k_query.bvecs" --limit 50 | cut -f2)

# recall WHERE: recall@10 of the index against ORDER BY an expression no index serves.
recall() {
    local approx exact
    approx=$(for q in "${QUERIES[@]}"; do
        echo "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items $1 ORDER BY v <-> '$q' LIMIT 10) s;"
    done | psql -X -q -v ON_ERROR_STOP=1 -At)
    exact=$(for q in "${QUERIES[@]}"; do
        echo "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items $1 ORDER BY (v <-> '$q') + 0 LIMIT 10) s;"
    done | psql -X -q -v ON_ERROR_STOP=1 -At)
    paste -d'|' <(echo "$approx") <(echo "$exact") | awk -F'|' '{
        n = split($1, a, ","); split($2, e, ","); delete seen
        for (i in e) seen[e[i]] = 1
        for (i = 1; i <= n; i++) hit += (a[i] in seen); total += 10 }
        END { printf "%.4f\n", hit / total }'
}
Q0=${QUERIES[0]}
plan=$(sql "EXPLAIN SELECT id FROM items ORDER BY v <-> '$Q0' LIMIT 10")
[[ $plan == *"Custom Scan (Citus Adaptive)"* && $plan == *"Task Count: $shards"* && $plan == *"Index Scan using items_v_"* ]] \
    || fail "top-k is not pushed to every shard as an xhnsw scan: $plan"
echo "ok: top-k runs as an xhnsw index scan on every shard ($shards tasks) and merges on the coordinator"
export PGOPTIONS="-c xhnsw.ef_search=64"
assert_ge "distributed recall@10" "$(recall "")" 0.95
assert_ge "distributed recall@10, label = 3" "$(recall "WHERE label = 3")" 0.95

plan=$(sql "EXPLAIN SELECT id FROM items WHERE tenant = 7 ORDER BY v <-> '$Q0' LIMIT 10")
[[ $plan == *"Task Count: 1"* && $plan == *"Index Scan using items_v_"* ]] || fail "tenant query is not a router plan on the index: $plan"
echo "ok: a tenant's query is a router plan to one shard's xhnsw index"
assert_ge "one tenant's recall@10" "$(recall "WHERE tenant = 7")" 0.95

# exact_match WHERE: every query's index answer equals the exact answer (ids as sets).
exact_match() {
    local ann exact q
    ann=$(for q in "${QUERIES[@]}"; do
        echo "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM items $1 ORDER BY v <-> '$q' LIMIT 10) s;"
    done | psql -X -q -v ON_ERROR_STOP=1 -At)
    exact=$(for q in "${QUERIES[@]}"; do
        echo "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM items $1 ORDER BY (v <-> '$q') + 0 LIMIT 10) s;"
    done | psql -X -q -v ON_ERROR_STOP=1 -At)
    [ "$ann" = "$exact" ] || fail "$2: index answers differ from the exact ones"
    echo "ok: $2: index answers equal the exact ones for ${#QUERIES[@]} queries"
}

echo "-- writes"
# pgvector on Citus failed INSERT ... SELECT array[random(), ...] (proargdefaults); xmodal must not.
terms=$(for i in $(seq 128); do printf 'random() * 100,'; done)
sql "INSERT INTO items SELECT 20, 10000 + g, g % 7, array[${terms%,}]::xvector FROM generate_series(1, 300) g"
[ "$(sql "SELECT count(*) FROM items WHERE tenant = 20")" = 300 ] || fail "INSERT ... SELECT array[random(), ...]"
echo "ok: INSERT ... SELECT array[random(), ...] into the distributed table"
# Row 5000 (tenant 0) takes query 1's vector: both are then at distance 0 from it.
sql "UPDATE items SET v = '${QUERIES[1]}' WHERE tenant = 0 AND id = 5000"
sql "UPDATE items SET label = (label + 1) % 7 WHERE id % 3 = 0"
sql "DELETE FROM items WHERE id % 5 = 0 AND id <> 5000"
sql "VACUUM items"
got=$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM items ORDER BY v <-> '${QUERIES[1]}' LIMIT 2) s")
[ "$got" = "1,5000" ] || fail "updated row not found by the index: $got"
echo "ok: an updated vector is found through the index"
exact_match "WHERE label = 2" "after INSERT/UPDATE/DELETE/VACUUM, label = 2"
assert_ge "recall@10 after writes" "$(recall "")" 0.95

# COPY binary out of the distributed table and into another one: values byte-equal.
sql "CREATE TABLE items_copy (LIKE items)"
sql "SELECT create_distributed_table('items_copy', 'tenant', colocate_with => 'items')" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy items TO '$ROOT/target/it/citus-items.bin' WITH (FORMAT binary)"
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy items_copy FROM '$ROOT/target/it/citus-items.bin' WITH (FORMAT binary)"
equal=$(sql "SELECT count(*) FROM items a JOIN items_copy b USING (tenant, id)
             WHERE xvector_send(a.v) = xvector_send(b.v) AND a.label = b.label")
[ "$equal" = "$(sql "SELECT count(*) FROM items")" ] || fail "COPY binary round trip: $equal rows equal"
echo "ok: COPY binary round trip through the cluster is byte-equal"

echo "-- shard move"
read -r shard from <<<"$(sql "SELECT shardid, nodeport FROM citus_shards WHERE table_name = 'items'::regclass ORDER BY shardid LIMIT 1" | tr '|' ' ')"
to=$([ "$from" = "${PORT[worker1]}" ] && echo "${PORT[worker2]}" || echo "${PORT[worker1]}")
sql "SELECT citus_move_shard_placement($shard, '127.0.0.1', $from, '127.0.0.1', $to, shard_transfer_mode => 'block_writes')" >/dev/null
[ "$(sql "SELECT nodeport FROM citus_shards WHERE shardid = $shard")" = "$to" ] || fail "shard $shard did not move"
target=$([ "$to" = "${PORT[worker1]}" ] && echo worker1 || echo worker2)
problems=$(on "$target" "SELECT string_agg(check_name || '=' || value, ' ') FROM xmodal.index_check('items_v_$shard')
                WHERE check_name IN ('bad_entry_point', 'bad_neighbour_items', 'bad_links', 'links_to_deleted',
                                     'level_violations', 'unreachable', 'directory_mismatches') AND value <> 0")
[ -z "$problems" ] || fail "index_check on the moved shard: $problems"
echo "ok: shard $shard moved to $target; index_check of items_v_$shard is clean there"
exact_match "WHERE label = 2" "after the move, label = 2"
assert_ge "recall@10 after the move" "$(recall "")" 0.95

echo "-- embed_text: encoded once, on the coordinator"
# The model is registered on the coordinator only: a worker asked to encode would fail.
sql "SELECT xmodal.register_model('citus_m', '$ROOT/tests/models/openclip-tiny')" >/dev/null
sql "CREATE TABLE docs (tenant int, id int, emb xvector(16), PRIMARY KEY (tenant, id))"
sql "SELECT create_distributed_table('docs', 'tenant')" >/dev/null
sql "COPY (SELECT g % 4, g, embed_text('photo number ' || g, 'citus_m') FROM generate_series(1, 200) g) TO STDOUT" \
    | psql -X -q -v ON_ERROR_STOP=1 -c "\\copy docs FROM STDIN"
sql "CREATE INDEX docs_emb ON docs USING xhnsw (emb xvector_cosine_ops)"
requests() { # NODE: text requests the node's encoder service has served
    on "$1" "SELECT coalesce(sum(requests), 0) FROM xmodal.encoder_service WHERE modality = 'text'"
}
# ORDER BY emb <=> (SELECT embed_text(...)): Citus plans the uncorrelated subquery once, on the
# coordinator, and ships its result to the shards.
query="SELECT id FROM docs ORDER BY emb <=> (SELECT embed_text('photo number 17', 'citus_m')) LIMIT 10"
before=$(requests coordinator)
got=$(sql "SELECT string_agg(id::text, ',') FROM ($query) s")
[ "${got%%,*}" = 17 ] || fail "embed_text top-k: $got"
[ $(($(requests coordinator) - before)) = 1 ] || fail "the coordinator encoded $(($(requests coordinator) - before)) times for one query"
for n in worker1 worker2; do
    [ "$(requests $n)" = 0 ] || fail "$n encoded text"
done
# 25 rows a shard would rather be sorted: SET LOCAL reaches the shards with propagate_set_commands.
plan=$(psql -X -q -v ON_ERROR_STOP=1 -At -c "SET citus.propagate_set_commands = 'local'" -c BEGIN \
    -c "SET LOCAL enable_seqscan = off" -c "EXPLAIN $query" -c COMMIT)
[[ $plan == *"Task Count: $shards"* && $plan == *"Index Scan using docs_emb_"* ]] || fail "embed_text top-k plan: $plan"
echo "ok: one text inference per query, on the coordinator; all $shards shards scan their xhnsw index"
# A bare embed_text(...) in ORDER BY is a stable call, which Citus sends to the shards: with the
# model registered on the coordinator only, that is a clear ERROR, never a silent re-encode.
out=$(sql "SELECT id FROM docs ORDER BY emb <=> embed_text('photo number 17', 'citus_m') LIMIT 10" 2>&1 || true)
[[ $out == *'ERROR:  model "citus_m" is not registered'* && $out == *"while executing command on"* ]] \
    || fail "bare embed_text on a distributed table: $out"
echo "ok: a bare embed_text in ORDER BY is pushed to the workers, which refuse it (model not registered there)"

echo "-- a model registered on every node"
# run_command_on_all_nodes runs as the calling role on every node: the same privilege rule holds.
register="SELECT xmodal.register_model('citus_all', '$ROOT/tests/models/openclip-tiny')"
sql "CREATE ROLE app LOGIN"
out=$(PGUSER=app sql "SELECT string_agg(DISTINCT success::text || ' ' || result, '; ') FROM run_command_on_all_nodes(\$\$$register\$\$)")
[[ $out == "false "*"permission denied"* && $out != *true* ]] || fail "a plain role registered a model on some node: $out"
[ "$(sql "SELECT bool_and(success) AND count(*) = 3 FROM run_command_on_all_nodes(\$\$$register\$\$)")" = t ] \
    || fail "register_model on every node"
echo "ok: run_command_on_all_nodes registers a model on the three nodes (superuser only, as on one server)"
# total: text requests of the three nodes
total() { echo $(($(requests coordinator) + $(requests worker1) + $(requests worker2))); }
# Router queries (one tenant) send the whole statement to one worker: one inference there, either form.
want=$(sql "SELECT string_agg(id::text, ',') FROM (SELECT id FROM docs WHERE tenant = 1 ORDER BY emb <=> '$(sql "SELECT embed_text('photo number 17', 'citus_all')")' LIMIT 5) s")
for form in "embed_text('photo number 17', 'citus_all')" "(SELECT embed_text('photo number 17', 'citus_all'))"; do
    before=$(total)
    got=$(sql "SELECT string_agg(id::text, ',') FROM (SELECT id FROM docs WHERE tenant = 1 ORDER BY emb <=> $form LIMIT 5) s")
    [ "$got" = "$want" ] || fail "router query with $form: $got, want $want"
    [ $(($(total) - before)) = 1 ] || fail "router query with $form: $(($(total) - before)) inferences"
done
echo "ok: a tenant's query encodes once, on its worker, with either form"
# A bare call on every shard: each shard's task encodes the same text to the same vector.
before_c=$(requests coordinator); before=$(total)
got=$(sql "SELECT string_agg(id::text, ',') FROM (SELECT id FROM docs ORDER BY emb <=> embed_text('photo number 17', 'citus_all') LIMIT 10) s")
want=$(sql "SELECT string_agg(id::text, ',') FROM (SELECT id FROM docs ORDER BY emb <=> (SELECT embed_text('photo number 17', 'citus_all')) LIMIT 10) s")
[ "$got" = "$want" ] || fail "bare embed_text with the model on every node: $got, subquery form $want"
bare=$(($(total) - before - 1))   # the subquery form's one inference is in the total too
[ "$(requests coordinator)" = $((before_c + 1)) ] && [ "$bare" -ge 1 ] && [ "$bare" -le "$shards" ] \
    || fail "bare embed_text: $bare inferences on the workers, coordinator $(($(requests coordinator) - before_c))"
echo "ok: a bare embed_text with the model on every node answers as the subquery form ($bare worker inferences for $shards shards)"
[ "$(sql "SELECT bool_and(success) FROM run_command_on_all_nodes(\$\$SELECT xmodal.drop_model('citus_all')\$\$)")" = t ] \
    || fail "drop_model on every node"
out=$(sql "SELECT id FROM docs WHERE tenant = 1 ORDER BY emb <=> embed_text('dog', 'citus_all') LIMIT 1" 2>&1 || true)
[[ $out == *'model "citus_all" is not registered'* ]] || fail "after drop_model on every node: $out"
echo "ok: drop_model through run_command_on_all_nodes unregisters it on every node"

echo "-- reference table"
sql "CREATE TABLE ref (id int PRIMARY KEY, v xvector(128))"
sql "SELECT create_reference_table('ref')" >/dev/null
sql "INSERT INTO ref SELECT id, v FROM items WHERE tenant = 7"
sql "CREATE INDEX ref_v ON ref USING xhnsw (v xvector_l2_ops)"
want=$(sql "SELECT string_agg(id::text, ',') FROM (SELECT id FROM ref ORDER BY (v <-> '${QUERIES[7]}') + 0 LIMIT 5) s")
for n in "${nodes[@]}"; do
    got=$(on "$n" "SET enable_seqscan = off; SELECT string_agg(id::text, ',') FROM (SELECT id FROM ref ORDER BY v <-> '${QUERIES[7]}' LIMIT 5) s")
    [ "$got" = "$want" ] || fail "reference table on $n: $got, exact $want"
done
echo "ok: the reference table's xhnsw index answers exactly on all three nodes"
echo "citus.sh: $((SECONDS - started)) s"
