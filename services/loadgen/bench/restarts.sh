#!/usr/bin/env bash
# Time to ready after a restart, as the shop's history grows, with view
# snapshots and without: one `ordershop local` (its Redis with room for
# the history) filled by `ordershop-loadgen --flows` up to each size in
# SIZES, and at each size `ordershop-restarts` kills ROLES one after the
# other (ROUNDS times each) and times them until they serve again — first
# with snapshots (this build's default), then the same data served by
# OTHER_BUILD_DIR's `ordershop` (the previous build, which replays every
# topic) or, without one, this build with `--snapshot-every 0`.
#
#   cargo build --release -p ordershop -p ordershop-loadgen
#   services/loadgen/bench/restarts.sh "10000 100000" [ROUNDS] [OTHER_BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../../.."
. services/loadgen/bench/shop.sh
sizes="${1:-10000 100000}"
rounds="${2:-2}"
roles="${ORDERSHOP_BENCH_ROLES:-customer,inventory,order,shipping,crm,read-model}"
bench_setup "${3:-}"
other="${3:+$3/ordershop}"
data="$work/shop"
memory=(--redis-maxmemory 12gb --redis-port 0)

# Snapshot sizes the roles logged last (compressed bytes per view).
snapshot_sizes() {
  sed 's/\x1b\[[0-9;]*m//g' "$data.log" | grep -o 'snapshot of the view name=[a-z-]* bytes=[0-9]*' \
    | awk '{split($5,n,"="); split($6,b,"="); last[n[2]]=b[2]} END {for (k in last) printf "%s %.1f MB; ", k, last[k]/1e6; print ""}' || true
}

filled=0
for size in $sizes; do
  start_shop "$bin/ordershop" "$data" "${memory[@]}"
  "$bin/ordershop-loadgen" --url "$url" --clients 32 --flows "$((size - filled))" --format json \
    >"$work/load-$size.json" || echo "(the load run reported a failed check)"
  filled="$size"
  # Let every view reach its next snapshot (checked every 5 s).
  sleep 15
  echo "## $size flows: with snapshots (this build)"
  echo "snapshots: $(snapshot_sizes)"
  "$bin/ordershop-restarts" --data-dir "$data" --roles "$roles" --rounds "$rounds"
  stop_shop
  if [ -n "$other" ]; then
    echo "## $size flows: replaying every topic ($other)"
    start_shop "$other" "$data" "${memory[@]}"
  else
    echo "## $size flows: replaying every topic (this build, --snapshot-every 0)"
    start_shop "$bin/ordershop" "$data" "${memory[@]}" --snapshot-every 0
  fi
  "$bin/ordershop-restarts" --data-dir "$data" --roles "$roles" --rounds "$rounds"
  stop_shop
done
