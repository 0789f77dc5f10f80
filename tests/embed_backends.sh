#!/usr/bin/env bash
# The encoders across backends and server set-ups (pg_test/sql/embed.sql covers one session):
#   - an ONNX Runtime library of the wrong version is refused with a clear ERROR;
#   - xmodal.preload loads models at each backend's first statement, with the library in
#     session_preload_libraries and in shared_preload_libraries with xmodal.encoder = backend
#     (tests/encoder_service.sh covers the service); the postmaster itself never maps ONNX
#     Runtime (only backends do); a session that starts with BEGIN ISOLATION LEVEL
#     SERIALIZABLE, SET TRANSACTION or SET still works and is still preloaded;
#   - a model registered again or dropped in one session is seen by another one at once;
#   - no backend crashed meanwhile.
source "$(dirname "$0")/lib.sh"
LIBRARY=/usr/local/lib/xmodal/libonnxruntime.so.1.31.1
[ -f "$LIBRARY" ] || skip "$LIBRARY not found (scripts/get-onnxruntime.sh)"
MODELS=$ROOT/tests/models
start_cluster embed_backends
sql "SELECT xmodal.register_model('em_oc', '$MODELS/openclip-tiny')" 2>/dev/null
sql "SELECT xmodal.register_model('em_m', '$MODELS/openclip-tiny')" 2>/dev/null

# expect NAME OUTPUT PATTERN: the output must contain the (glob) pattern.
expect() {
    [[ $2 == *$3* ]] || fail "$1: expected *$3*, got: $2"
    echo "ok: $1"
}

echo "-- a library of the wrong version"
if command -v cc >/dev/null; then
    fake=$CLUSTER_DIR/libonnxruntime.so.1.20.0
    cat > "$CLUSTER_DIR/fake_ort.c" <<'C'
/* Exports OrtGetApiBase like ONNX Runtime 1.20, which lacks the API version xmodal needs. */
#include <stddef.h>
typedef struct { const void *(*GetApi)(unsigned version); const char *(*GetVersionString)(void); } OrtApiBase;
static const void *get_api(unsigned version) { (void) version; return NULL; }
static const char *version_string(void) { return "1.20.0"; }
static const OrtApiBase base = { get_api, version_string };
const OrtApiBase *OrtGetApiBase(void) { return &base; }
C
    cc -shared -fPIC -o "$fake" "$CLUSTER_DIR/fake_ort.c"
    out=$(psql -X -At -c "SET xmodal.onnxruntime_library = '$fake'" \
        -c "SELECT embed_text('dog', 'em_oc')" 2>&1 || true)
    expect "old library refused" "$out" "ERROR:  cannot load ONNX Runtime from $fake: *expected version >= '1.31.x', but got '1.20.0'"
else
    echo "SKIP: no C compiler to build a fake old library"
fi

echo "-- xmodal.preload with session_preload_libraries"
out=$(psql -X -At -c "SELECT coalesce(device, 'not loaded') FROM xmodal.models WHERE name = 'em_oc'" 2>&1)
expect "no preload, not loaded" "$out" "not loaded"
out=$(PGOPTIONS="-c session_preload_libraries=xmodal -c xmodal.preload=em_missing,em_oc -c xmodal.device=cpu" \
    psql -X -At -c "SELECT coalesce(device, 'not loaded') FROM xmodal.models WHERE name = 'em_oc'" 2>&1)
expect "session preload loads em_oc" "$out" "cpu"
expect "session preload warns" "$out" 'WARNING:  xmodal.preload: model "em_missing" is not registered'
out=$(PGOPTIONS="-c session_preload_libraries=xmodal -c xmodal.preload=em_oc -c xmodal.device=cpu" \
    psql -X -At -c "SELECT calls, inferences FROM xmodal.encoder_stats()" \
    -c "SELECT vector_dims(embed_text('dog', 'em_oc'))" -c "SELECT calls, inferences FROM xmodal.encoder_stats()" 2>&1)
expect "preloaded model embeds" "$out" $'16\n1|1'

echo "-- xmodal.preload when a session starts with a utility statement (drivers, ORMs)"
# The preload waits for the first statement that runs under a snapshot; it must not take the
# transaction's first snapshot itself (SET TRANSACTION ISOLATION LEVEL would fail with 25001).
preload_opts="-c session_preload_libraries=xmodal -c xmodal.preload=em_oc -c xmodal.device=cpu"
device="SELECT coalesce(device, 'not loaded') FROM xmodal.models WHERE name = 'em_oc'"
out=$(PGOPTIONS=$preload_opts psql -X -q -At -c "BEGIN ISOLATION LEVEL SERIALIZABLE" \
    -c "SELECT current_setting('transaction_isolation')" -c "$device" -c "COMMIT" 2>&1)
[[ $out == $'serializable\ncpu' ]] || fail "BEGIN ISOLATION LEVEL SERIALIZABLE first: $out"
echo "ok: BEGIN ISOLATION LEVEL SERIALIZABLE first, then preloaded"
out=$(PGOPTIONS=$preload_opts psql -X -q -At -c "BEGIN" \
    -c "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE" \
    -c "SELECT current_setting('transaction_isolation')" -c "$device" -c "COMMIT" 2>&1)
[[ $out == $'serializable\ncpu' ]] || fail "BEGIN + SET TRANSACTION first: $out"
echo "ok: BEGIN + SET TRANSACTION ISOLATION LEVEL first, then preloaded"
out=$(PGOPTIONS=$preload_opts psql -X -q -At -c "SET application_name = 'orm'" -c "SHOW application_name" \
    -c "$device" 2>&1)
[[ $out == $'orm\ncpu' ]] || fail "SET and SHOW first: $out"
echo "ok: SET and SHOW first, then preloaded"

echo "-- xmodal.preload with shared_preload_libraries"
"$ROOT/scripts/pg-cluster.sh" stop "$CLUSTER_DIR"
PG_EXTRA_CONF=$'shared_preload_libraries = \'xmodal\'\nxmodal.encoder = \'backend\'\nxmodal.preload = \'em_oc\'\nxmodal.device = \'cpu\'' \
    "$ROOT/scripts/pg-cluster.sh" start "$CLUSTER_DIR" "$PGPORT" >/dev/null
out=$(psql -X -At <<'SQL' 2>&1
SELECT coalesce(device, 'not loaded') FROM xmodal.models WHERE name = 'em_oc';
SELECT pg_backend_pid() AS pid \gset
\setenv BACKEND :pid
\! grep -c libonnxruntime /proc/$BACKEND/maps
SQL
)
expect "shared preload loads em_oc" "$out" "cpu"
[[ $(sed -n 2p <<< "$out") -ge 1 ]] || fail "the backend does not map ONNX Runtime: $out"
postmaster=$(head -n 1 "$CLUSTER_DIR/postmaster.pid")
mapped=$(grep -c libonnxruntime "/proc/$postmaster/maps" || true)
[ "$mapped" = 0 ] || fail "the postmaster maps ONNX Runtime ($mapped mappings)"
echo "ok: the postmaster never loaded ONNX Runtime"

echo "-- another session registers again and drops"
out=$(psql -X -At <<SQL 2>&1
SELECT vector_dims(embed_text('dog', 'em_m'));
\! psql -X -q -c "SELECT xmodal.register_model('em_m', '$MODELS/hf-tiny', replace => true)" >/dev/null 2>&1
SELECT vector_dims(embed_text('dog', 'em_m'));
\! psql -X -q -c "SELECT xmodal.drop_model('em_m')" >/dev/null 2>&1
SELECT vector_dims(embed_text('dog', 'em_m'));
SQL
)
expect "re-registration seen" "$out" $'16\n24\n'
expect "drop seen" "$out" 'ERROR:  model "em_m" is not registered'

if grep -E "terminated by signal|PANIC" "$CLUSTER_DIR/server.log"; then
    fail "a server process crashed"
fi
echo "ok: no crash in the server log"
