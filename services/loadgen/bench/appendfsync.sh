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
bin="${CARGO_TARGET_DIR:-target}/release"
rounds="${1:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$rounds"); do
  for mode in everysec always; do
    data="$work/$mode-$round"
    "$bin/ordershop" local --data-dir "$data" --redis-port 0 --base-port 0 \
      --http-listen 127.0.0.1:0 --redis-appendfsync "$mode" >"$data.log" 2>&1 &
    shop=$!
    for _ in $(seq 1 600); do [ -f "$data/run/http.addr" ] && break; sleep 0.1; done
    [ -f "$data/run/http.addr" ] || { cat "$data.log"; echo "the shop did not start" >&2; exit 1; }
    echo "## round $round, appendfsync $mode"
    "$bin/ordershop-loadgen" --url "http://$(cat "$data/run/http.addr")" --clients 8,32 --duration 20s
    kill -TERM "$shop"
    wait "$shop" || true
  done
done
