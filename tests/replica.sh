#!/usr/bin/env bash
# xhnsw on a streaming replica: the standby replays the build's full-page images and every
# GenericXLog change (inserts, VACUUM's repair). After the standby catches up, the same index
# scans must return the same rows on both servers, and the standby's index must pass
# xmodal.index_check.
source "$(dirname "$0")/lib.sh"
start_cluster replica_primary
PRIMARY_PORT=$PGPORT
STANDBY_DIR=$ROOT/target/it/replica_standby
"$ROOT/scripts/pg-cluster.sh" stop "$STANDBY_DIR"
rm -rf "$STANDBY_DIR" "$STANDBY_DIR.initdb.log"
trap '"$ROOT/scripts/pg-cluster.sh" stop "$STANDBY_DIR"; "$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"' EXIT

sql "CREATE TABLE items (id int PRIMARY KEY, emb xvector(16), cat int)"
sql "INSERT INTO items SELECT i, array_to_xvector(ARRAY(SELECT random() * 2 - 1 FROM generate_series(1, 16) WHERE i > 0), 16, true), i % 10
     FROM generate_series(1, 4000) i"
# Base backup first, so that the index build itself reaches the standby through WAL.
mkdir -p "$STANDBY_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$STANDBY_DIR" && chmod 700 "$STANDBY_DIR"
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
run_pg "$PG_BIN_DIR/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$STANDBY_DIR" -R -X stream
STANDBY_PORT=$((PRIMARY_PORT + 100))
"$ROOT/scripts/pg-cluster.sh" start "$STANDBY_DIR" "$STANDBY_PORT" >/dev/null
sql "CREATE INDEX items_idx ON items USING xhnsw (emb, cat)"
sql "INSERT INTO items SELECT i, array_to_xvector(ARRAY(SELECT random() * 2 - 1 FROM generate_series(1, 16) WHERE i > 0), 16, true), i % 10
     FROM generate_series(4001, 5000) i"
sql "DELETE FROM items WHERE id % 3 = 0"
sql "VACUUM items"

# Wait (bounded) for the standby to replay everything the primary wrote.
target=$(sql "SELECT pg_current_wal_lsn()")
for _ in $(seq 100); do
    replayed=$(PGPORT=$STANDBY_PORT sql "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")
    [ "$replayed" = t ] && break
    sleep 0.2
done
[ "$replayed" = t ] || fail "standby did not replay up to $target"
[ "$(PGPORT=$STANDBY_PORT sql "SELECT pg_is_in_recovery()")" = t ] || fail "standby is not a standby"

query="SELECT string_agg(id::text, ',' ORDER BY n) FROM (SELECT id, row_number() OVER () n FROM (
         SELECT id FROM items WHERE cat = 4 ORDER BY emb <-> (SELECT emb FROM items WHERE id = 1) LIMIT 20) s) t"
on_primary=$(PGOPTIONS="-c enable_seqscan=off" sql "$query")
on_standby=$(PGPORT=$STANDBY_PORT PGOPTIONS="-c enable_seqscan=off" sql "$query")
[ -n "$on_primary" ] && [ "$on_primary" = "$on_standby" ] || fail "standby answered $on_standby, primary $on_primary"
echo "ok: standby and primary return the same 20 rows through the index"
# That query was answered from the filter directory (333 of 3,334 rows match): exact. The graph
# search, its filter checked on each element, must agree between the two servers too.
exact=$(sql "${query/ORDER BY emb <-> (SELECT emb FROM items WHERE id = 1)/ORDER BY (emb <-> (SELECT emb FROM items WHERE id = 1)) + 0}")
[ "$on_standby" = "$exact" ] || fail "standby answered $on_standby through the directory, exact scan $exact"
graph="-c enable_seqscan=off -c xhnsw.exact_filter_limit=0"
on_primary=$(PGOPTIONS="$graph" sql "$query")
on_standby=$(PGPORT=$STANDBY_PORT PGOPTIONS="$graph" sql "$query")
[ -n "$on_primary" ] && [ "$on_primary" = "$on_standby" ] || fail "graph search: standby answered $on_standby, primary $on_primary"
echo "ok: the standby's directory answer equals an exact scan; its graph search equals the primary's"
problems=$(PGPORT=$STANDBY_PORT sql "SELECT string_agg(check_name || '=' || value, ' ') FROM xmodal.index_check('items_idx')
                                     WHERE check_name NOT IN ('elements', 'deleted_elements', 'heap_tids') AND value <> 0")
[ -z "$problems" ] || fail "index_check on the standby: $problems"
rows=$(PGPORT=$STANDBY_PORT sql "SELECT value FROM xmodal.index_check('items_idx') WHERE check_name = 'heap_tids'")
[ "$rows" = "$(sql "SELECT count(*) FROM items")" ] || fail "standby index holds $rows rows"
echo "ok: the standby's index is sound and holds all $rows rows"
