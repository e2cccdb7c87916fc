#!/usr/bin/env bash
# What the shop keeps as it sells, with retention and without: for each
# setting, a fresh `ordershop local` filled by `ordershop-loadgen --clients
# 32` in STEPS equal steps up to FLOWS flows; after each step (and a pause
# for the views' snapshots, checked every 5 s, and a retention pass, every
# 10 s here) it prints the entries of all streams, Redis' memory and the
# step's flows/s. The same build both times: keeping every event (the
# default) and `--trim-streams-every 10`.
#
#   cargo build --release -p ordershop -p ordershop-loadgen
#   services/loadgen/bench/retention.sh [FLOWS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
. services/loadgen/bench/shop.sh
flows="${1:-40000}"
steps="${2:-4}"
bench_setup ""
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cli() { redis-cli -p "$port" "$@"; }

for setting in keep-all trim; do
  data="$work/$setting"
  extra=()
  [ "$setting" = trim ] && extra=(--trim-streams-every 10)
  start_shop "$bin/ordershop" "$data" --redis-port "$port" --redis-maxmemory 12gb "${extra[@]}"
  echo "## $setting"
  echo "| flows | stream entries | Redis used memory | by kind of key | flows/s (step) |"
  echo "|---|---|---|---|---|"
  for step in $(seq 1 "$steps"); do
    "$bin/ordershop-loadgen" --url "$url" --clients 32 --flows "$((flows / steps))" --format json \
      >"$work/$setting-$step.json" 2>/dev/null || echo "(the load run reported a failed check)"
    sleep 20
    entries=0
    for topic in customer product inventory cart order billing shipping mail; do
      entries=$((entries + $(cli XLEN "events:$topic")))
    done
    # Bytes per kind of key (MEMORY USAGE of every key, summed by kind).
    cli --scan >"$work/keys"
    sed 's/^/MEMORY USAGE /' "$work/keys" | cli >"$work/sizes"
    paste "$work/keys" "$work/sizes" | awk '
      { k = $1
        if (k ~ /^events:/) kind = "streams"
        else if (k ~ /^\{events:snapshots\}/) kind = "snapshots"
        else if (k ~ /^\{events:.*\}:ids$/) kind = "event ids"
        else if (k ~ /^\{events:.*\}:versions$/) kind = "versions"
        else if (k ~ /^\{readmodel/) kind = "read model"
        else if (k ~ /^queue:/) kind = "queue"
        else kind = "other"
        bytes[kind] += $2 }
      END { for (k in bytes) printf "%s %.0f MB; ", k, bytes[k] / 1e6 }' >"$work/kinds"
    memory="$(cli INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')"
    rate="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"][0]; print(round(r["flows_per_s"]))' "$work/$setting-$step.json")"
    printf '| %d | %d | %.0f MB | %s | %s |\n' "$((flows / steps * step))" "$entries" \
      "$(echo "$memory / 1000000" | bc -l)" "$(cat "$work/kinds")" "$rate"
  done
  grep -o 'stream trimmed behind its readers.*' "$data.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -3 || true
  stop_shop
done
