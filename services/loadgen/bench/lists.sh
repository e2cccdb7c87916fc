#!/usr/bin/env bash
# Every list route at size, side by side with another build: for each
# build, a fresh `ordershop local`, FLOWS full order flows from 32 clients
# (`ordershop-loadgen --flows`), then `ordershop-lists` reads every list
# route whole ROUNDS times (latency to the last byte, size), walks each
# page by page (each entry once, as many as the whole list) and samples
# the gateway's resident memory.
#
#   cargo build --release -p ordershop -p ordershop-loadgen
#   services/loadgen/bench/lists.sh [FLOWS] [ROUNDS] [OTHER_BUILD_DIR]
#
# OTHER_BUILD_DIR holds the `ordershop` binary of the build to compare
# with (e.g. the previous commit's target/release); the load generator
# and the list reader are this build's for both.
set -euo pipefail
cd "$(dirname "$0")/../../.."
. services/loadgen/bench/shop.sh
flows="${1:-20000}"
rounds="${2:-10}"
bench_setup "${3:-}"
for build in "${builds[@]}"; do
  name="${build%%:*}"
  dir="${build#*:}"
  data="$work/$name"
  start_shop "$dir/ordershop" "$data" --redis-port 0
  echo "## $name build ($dir): $flows flows"
  "$bin/ordershop-loadgen" --url "$url" --clients 32 --flows "$flows" --format json \
    >"$work/$name-load.json" || echo "(the load run reported a failed check)"
  python3 - "$work/$name-load.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))["runs"][0]
print(f"load: {r['flows_shipped']} flows shipped, {r['flows_failed']} failed, {r['flows_per_s']:.1f} flows/s, p99 {r['flow_latency']['p99_ms']:.0f} ms")
PY
  "$bin/ordershop-lists" --url "$url" --rounds "$rounds" \
    --gateway-pid "$(cat "$data/run/api-gateway.pid")" || echo "(a list check failed)"
  stop_shop
done
