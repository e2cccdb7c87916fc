#!/usr/bin/env bash
# Throughput as the shop's history grows, side by side with another build:
# for each build, a fresh `ordershop local` (its Redis with room for the
# history) and one `ordershop-loadgen --clients 32 --flows FLOWS` run; the
# load generator's 5-second progress rate is printed at every tenth of the
# run. A decision that scans every entity of a kind slows down as the shop
# sells; one that looks entities up does not.
#
#   cargo build --release -p ordershop -p ordershop-loadgen
#   services/loadgen/bench/growth.sh [FLOWS] [OTHER_BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../../.."
. services/loadgen/bench/shop.sh
flows="${1:-40000}"
bench_setup "${2:-}"
for build in "${builds[@]}"; do
  name="${build%%:*}"
  dir="${build#*:}"
  data="$work/$name"
  start_shop "$dir/ordershop" "$data" --redis-port 0 --redis-maxmemory 12gb
  echo "## $name build ($dir): $flows flows"
  "$bin/ordershop-loadgen" --url "$url" --clients 32 --flows "$flows" --format json \
    >"$work/$name-load.json" 2>"$work/$name-load.log" || echo "(the load run reported a failed check)"
  python3 - "$work/$name-load.log" "$work/$name-load.json" "$flows" <<'PY'
import json, re, sys
log, result, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
progress = []
for line in open(log):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    m = re.search(r"progress flows=(\d+) rate=\"(\d+)/s\"", line)
    if m:
        progress.append((int(m.group(1)), int(m.group(2))))
marks, step = [], total // 10
for done, rate in progress:
    if done >= step * (len(marks) + 1):
        marks.append(f"{done // 1000}k: {rate}/s")
print("flows/s as it grows: " + ", ".join(marks))
r = json.load(open(result))["runs"][0]
print(f"whole run: {r['flows_shipped']} shipped, {r['flows_failed']} failed, {r['flows_per_s']:.1f} flows/s, p99 {r['flow_latency']['p99_ms']:.0f} ms")
PY
  stop_shop
done
