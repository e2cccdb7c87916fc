#!/usr/bin/env bash
# Full order flows under each Redis appendfsync mode, side by side:
# `ordershop local --redis-appendfsync MODE` (fresh data each run), then
# `ordershop-loadgen --clients 8,32 --duration 20s`; modes alternate for
# ROUNDS rounds so the machine's drift hits both alike.
#
#   cargo build --release -p ordershop -p ordershop-loadgen
#   services/loadgen/bench/appendfsync.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
. services/loadgen/bench/shop.sh
rounds="${1:-3}"
bench_setup
for round in $(seq 1 "$rounds"); do
  for mode in everysec always; do
    data="$work/$mode-$round"
    start_shop "$bin/ordershop" "$data" --redis-port 0 --redis-appendfsync "$mode"
    echo "## round $round, appendfsync $mode"
    "$bin/ordershop-loadgen" --url "$url" --clients 8,32 --duration 20s
    stop_shop
  done
done
