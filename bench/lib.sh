# Shared by the benchmarks (sourced): a throw-away cluster sized for them, fashion-mnist loading,
# and timing helpers. Benchmarks are run by hand; their results go to bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=${XMODAL_SHARED:-$(cd .. && pwd)/shared}/data/fashion-mnist
[ -d "$DATA" ] || { echo "needs $DATA"; exit 1; }
PGBENCH=/usr/lib/postgresql/${PG_MAJOR:-15}/bin/pgbench

start_bench_cluster() { # name
    BENCH_DIR=$PWD/target/bench/$1
    export PG_EXTRA_CONF="shared_buffers = 1GB
maintenance_work_mem = 2GB
max_parallel_maintenance_workers = 1
jit = off"
    scripts/pg-cluster.sh stop "$BENCH_DIR"
    rm -rf "$BENCH_DIR"
    PGPORT=$(scripts/pg-cluster.sh start "$BENCH_DIR")
    export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres
    trap 'scripts/pg-cluster.sh stop "$BENCH_DIR"' EXIT
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
    sql "CREATE EXTENSION xmodal"
}

sql() { psql -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }

# fm(id, emb, label): 60,000 train images; fm_q(qid, emb, label): the first N test images.
load_fashion_mnist() { # queries
    sql "CREATE TABLE fm (id int PRIMARY KEY, emb xvector(784), label int)"
    sql "CREATE TABLE fm_q (qid int PRIMARY KEY, emb xvector(784), label int)"
    python3 bench/idx2tsv.py "$DATA/train-images-idx3-ubyte.gz" --labels "$DATA/train-labels-idx1-ubyte.gz" |
        psql -X -q -c "\\copy fm FROM STDIN"
    python3 bench/idx2tsv.py "$DATA/t10k-images-idx3-ubyte.gz" --labels "$DATA/t10k-labels-idx1-ubyte.gz" --limit "$1" |
        psql -X -q -c "\\copy fm_q FROM STDIN"
    sql "VACUUM ANALYZE fm"
}

# Queries per second of one client over prepared statements: qps SCRIPT_FILE PGOPTIONS SECONDS
qps() {
    PGOPTIONS="$2" "$PGBENCH" -n -M prepared -c 1 -T "$3" -f "$1" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p' |
        awk '{ printf "%.0f", $1 }'
}

# The median of the numbers in a space-separated list on stdin (rounds of one point).
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
