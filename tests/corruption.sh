#!/usr/bin/env bash
# Corrupt xhnsw index pages on disk: with the server stopped, bytes of one page are overwritten
# (an element's line pointer, a neighbour item's level byte, the metapage's dimension count, the
# filter directory's chain and tail hint), then the server is restarted and every reader of
# that page (a scan, filtered scans, an insert, xmodal.index_check, VACUUM) must get ERROR
# XX002, while the server stays up: the same postmaster (pg_postmaster_start_time) and no
# crashed backend in its log. Readers that do not touch the corrupt page still work. Each case
# starts from a copy of the intact index file.
source "$(dirname "$0")/lib.sh"
# PostgreSQL 18's initdb turns data checksums on, so a byte overwritten on disk would be
# PostgreSQL's own ERROR XX001 before xhnsw read the page; this test is about xhnsw's decoders.
# (The help text is read whole: initdb writes it in many small writes, and `| grep -q` under
# pipefail failed about one run in ten when grep exited before initdb's last write.)
initdb_help=$("$PG_BIN_DIR/initdb" --help)
if [[ $initdb_help == *--no-data-checksums* ]]; then
    export PG_INITDB_OPTS=--no-data-checksums
fi
start_cluster corruption
[ "$(sql "SHOW data_checksums")" = off ] || fail "the cluster has data checksums on: xhnsw would never see a corrupt page"
DIMS=16
PAGE=8192

sql "CREATE TABLE items (id int PRIMARY KEY, emb xvector($DIMS), g int) WITH (autovacuum_enabled = off)"
sql "CREATE FUNCTION vec(s int) RETURNS xvector LANGUAGE sql IMMUTABLE AS
     'SELECT array_to_xvector(ARRAY(SELECT sin(s * 7.1 + j * 1.3)::real FROM generate_series(1, $DIMS) j), $DIMS, true)'"
sql "INSERT INTO items SELECT i, vec(i), i % 10 FROM generate_series(1, 2000) i"
sql "CREATE INDEX items_idx ON items USING xhnsw (emb, g)"
sql "DELETE FROM items WHERE id % 10 = 0"
sql "CHECKPOINT"
file="$CLUSTER_DIR/$(sql "SELECT pg_relation_filepath('items_idx')")"

# Locations in the index file (little-endian, PostgreSQL 15 layouts).
locate() {
    python3 - "$file" "$1" <<'EOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
PAGE = 8192
def u32(at): return struct.unpack_from('<I', data, at)[0]
def u16(at): return struct.unpack_from('<H', data, at)[0]
def line_pointer(block, offset):
    at = block * PAGE + 24 + (offset - 1) * 4
    lp = u32(at)
    return at, lp & 0x7fff, lp >> 17
meta = 24
entry_block, entry_offset = u32(meta + 24), u16(meta + 28)
_, element_off, _ = line_pointer(entry_block, entry_offset)
element = entry_block * PAGE + element_off
what = sys.argv[2]
if what == 'entry_heap_tid':
    print('(%d,%d)' % (u32(element + 16), u16(element + 20)))
elif what == 'entry_line_pointer':
    print(line_pointer(entry_block, entry_offset)[0])
elif what == 'entry_neighbour_level':
    nb_block, nb_offset = u32(element + 4), u16(element + 8)
    _, nb_off, _ = line_pointer(nb_block, nb_offset)
    print(nb_block * PAGE + nb_off + 1)
elif what == 'meta_dims':
    print(meta + 8)
elif what == 'directory':
    head, insert_page = u32(meta + 48), u32(meta + 36)
    print(head * PAGE + PAGE - 8, meta + 52, insert_page)
EOF
}

# Overwrite bytes at a file offset: poke OFFSET FORMAT VALUE (struct format, e.g. <I).
poke() {
    python3 - "$file" "$1" "$2" "$3" <<'EOF'
import struct, sys
path, at, fmt, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(path, 'r+b') as f:
    f.seek(at)
    f.write(struct.pack(fmt, value))
EOF
}

# The entry point's row is deleted too, so that VACUUM must rewire around the entry point
# (reading its neighbour item) whatever the scope of its repair.
sql "DELETE FROM items WHERE ctid = '$(locate entry_heap_tid)'"
sql "CHECKPOINT"
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"
cp -p "$file" "$file.intact"

# Run one reader; print ok, or the SQLSTATE of its error.
reader() {
    local out
    if out=$(PGOPTIONS="-c enable_seqscan=off -c enable_bitmapscan=off ${2:-}" \
             timeout 120 psql -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$1" 2>&1); then
        echo ok
    else
        sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' <<<"$out" | head -n 1 | grep . || echo "failed: $out"
    fi
}

SCAN="SELECT id FROM items ORDER BY emb <-> vec(5) LIMIT 5"
FILTERED="SELECT id FROM items WHERE g = 3 ORDER BY emb <-> vec(5) LIMIT 5"
INSERT="INSERT INTO items VALUES (100000, vec(100000), 3)"
CHECK="SELECT count(*) FROM xmodal.index_check('items_idx')"

# corrupt_case NAME EXPECTED: EXPECTED lists reader=outcome (XX002 or ok).
run_case() {
    local name=$1; shift
    "$ROOT/scripts/pg-cluster.sh" start "$CLUSTER_DIR" >/dev/null
    local started; started=$(sql "SELECT pg_postmaster_start_time()")
    local log_lines; log_lines=$(wc -l < "$CLUSTER_DIR/server.log")
    declare -A got
    got[scan]=$(reader "$SCAN")
    got[filtered_graph]=$(reader "$FILTERED" "-c xhnsw.exact_filter_limit=0")
    got[filtered_directory]=$(reader "$FILTERED")
    got[insert]=$(reader "$INSERT")
    got[index_check]=$(reader "$CHECK")
    got[vacuum]=$(reader "VACUUM items")
    local expectation reader_name want
    for expectation in "$@"; do
        reader_name=${expectation%%=*}; want=${expectation#*=}
        [ "${got[$reader_name]}" = "$want" ] || fail "$name: $reader_name gave '${got[$reader_name]}', expected $want"
    done
    [ "$(sql "SELECT pg_postmaster_start_time()")" = "$started" ] || fail "$name: the postmaster restarted"
    if tail -n +"$((log_lines + 1))" "$CLUSTER_DIR/server.log" | grep -E "terminated by signal|was terminated|PANIC|server process .* exited"; then
        fail "$name: a backend crashed"
    fi
    echo "ok: $name: $(for r in scan filtered_graph filtered_directory insert index_check vacuum; do printf '%s=%s ' "$r" "${got[$r]}"; done)"
    "$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"
}

restore() { cp -p "$file.intact" "$file"; }

# 1. The entry point's line pointer claims 8000 bytes: past the page's end.
restore
at=$(locate entry_line_pointer)
lp=$(python3 -c "import struct; print(struct.unpack('<I', open('$file','rb').read()[$at:$at+4])[0])")
poke "$at" '<I' $(( (lp & 0x1ffff) | (8000 << 17) ))
run_case "element line pointer" scan=XX002 filtered_graph=XX002 insert=XX002 index_check=XX002 vacuum=XX002

# 2. The entry point's neighbour item says level 255.
restore
poke "$(locate entry_neighbour_level)" '<B' 255
run_case "neighbour level" scan=XX002 filtered_graph=XX002 insert=XX002 index_check=XX002 vacuum=XX002

# 3. The metapage says 60000 dimensions.
restore
poke "$(locate meta_dims)" '<I' 60000
run_case "metapage dims" scan=XX002 filtered_graph=XX002 filtered_directory=XX002 insert=XX002 index_check=XX002 vacuum=XX002

# 4. The directory's first page links to an element page, and the metapage's tail hint names
# the page the next insert writes its element to (locking it twice would self-deadlock). The
# graph does not read the directory: plain scans and VACUUM still work.
restore
read -r head_next tail_hint insert_page <<<"$(locate directory)"
poke "$head_next" '<I' 1
poke "$tail_hint" '<I' "$insert_page"
size_before=$(stat -c %s "$file")
run_case "directory" scan=ok filtered_graph=ok filtered_directory=XX002 insert=XX002 index_check=XX002 vacuum=ok
# Failed inserts leave no orphan pages: three more failures grow the index by one page at most.
"$ROOT/scripts/pg-cluster.sh" start "$CLUSTER_DIR" >/dev/null
for i in 1 2 3; do [ "$(reader "$INSERT")" = XX002 ] || fail "insert $i into a corrupt directory did not fail"; done
sql "CHECKPOINT"
size_after=$(stat -c %s "$file")
[ "$size_after" -le $((size_before + PAGE)) ] || fail "failed inserts grew the index from $size_before to $size_after bytes"
echo "ok: failed inserts grew the index by $((size_after - size_before)) bytes"
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"

# The intact index is sound and answers (the corruption was in the copies only).
restore
"$ROOT/scripts/pg-cluster.sh" start "$CLUSTER_DIR" >/dev/null
problems=$(sql "SELECT count(*) FROM xmodal.index_check('items_idx') WHERE check_name NOT IN ('elements', 'deleted_elements', 'heap_tids') AND value <> 0")
[ "$problems" = 0 ] || fail "the intact index has $problems problems"
[ "$(reader "$SCAN")" = ok ] || fail "the intact index cannot be scanned"
echo "ok: the intact index checks clean"
echo "corruption: all readers failed cleanly"
