#!/usr/bin/env bash
# The load test of tests/load.sh (pgbench mix of top-k, filtered top-k, inserts, updates and
# deletes with 8 clients, VACUUM every 15 s, then the index checks) for 10 minutes a round.
#   bench/load/run.sh [ROUNDS]     (LOAD_SECONDS, LOAD_ROWS, LOAD_DIMS override the sizes)
set -euo pipefail
cd "$(dirname "$0")/../.."
LOAD_SECONDS=${LOAD_SECONDS:-600} LOAD_ROUNDS=${1:-1} exec bash tests/load.sh
