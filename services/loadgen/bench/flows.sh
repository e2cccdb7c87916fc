#!/usr/bin/env bash
# Redis commands, CPU and throughput per order flow, side by side with
# another build: for each round and build (alternated, so the machine's
# drift hits both alike), a fresh `ordershop local`, then
# `ordershop-loadgen --clients CLIENTS --duration DURATION`; Redis's
# `INFO commandstats` and the CPU time of every process of the shop (its
# Redis included, from /proc) are read before and, once the queues and
# consumer groups are empty again, after.
#
#   cargo build --release -p ordershop -p ordershop-loadgen
#   services/loadgen/bench/flows.sh [ROUNDS] [OTHER_BUILD_DIR] [CLIENTS] [DURATION]
#
# Commands per flow do not depend on the machine: the headline figure.
set -euo pipefail
cd "$(dirname "$0")/../../.."
. services/loadgen/bench/shop.sh
rounds="${1:-3}"
clients="${3:-32}"
duration="${4:-20s}"
port="${ORDERSHOP_BENCH_REDIS_PORT:-6431}"
bench_setup "${2:-}"

# CPU seconds (user + system) of a process and all its descendants.
tree_cpu() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
children = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    children.setdefault(int(fields[1]), []).append((int(pid), fields))
total, todo = 0, [root]
try:
    fields = open(f"/proc/{root}/stat").read().rsplit(")", 1)[1].split()
    total += int(fields[11]) + int(fields[12])
except OSError:
    pass
while todo:
    for pid, fields in children.get(todo.pop(), []):
        total += int(fields[11]) + int(fields[12])
        todo.append(pid)
print(total / os.sysconf("SC_CLK_TCK"))
PY
}

# Waits (at most 2 minutes) until the work the flows caused is done: no
# queue message waiting, leased or delayed, no event a consumer group has
# not read or acked. Mails lag the flows under load; without this the
# commands and CPU of a build that keeps up would count more than another's.
# The commands it sends itself are written to FILE, to be left out.
settle() {
  python3 - "$1" "$2" <<'PY'
import collections, json, subprocess, sys, time
port, sent = sys.argv[1], collections.Counter()
def cli(*args):
    sent[args[0].lower()] += 1
    out = subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True, check=True).stdout
    return [line for line in out.split("\n") if line]
def left():
    total = 0
    # One KEYS per look, so what this sends is counted exactly; the
    # keyspace of a bench run is small.
    for key in cli("KEYS", "queue:*"):
        if key.endswith((":waiting", ":inflight")):
            total += int(cli("LLEN", key)[0])
        elif key.endswith(":delayed"):
            total += int(cli("ZCARD", key)[0])
    for key in cli("KEYS", "events:*"):
        if cli("TYPE", key)[0] != "stream":
            continue
        info = cli("XINFO", "GROUPS", key)
        for i, field in enumerate(info[:-1]):
            if field in ("pending", "lag") and info[i + 1].isdigit():
                total += int(info[i + 1])
    return total
deadline, quiet = time.time() + 120, 0
while time.time() < deadline and quiet < 2:
    quiet = quiet + 1 if left() == 0 else 0
    time.sleep(0.25)
if quiet < 2:
    print(f"(work still pending after 2 minutes: {left()})", file=sys.stderr)
json.dump(sent, open(sys.argv[2], "w"))
PY
}

echo "| build | round | flows | failed | flows/s | p99 ms | Redis commands/flow | CPU ms/flow | top commands per flow |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for round in $(seq 1 "$rounds"); do
  for build in "${builds[@]}"; do
    name="${build%%:*}"
    dir="${build#*:}"
    data="$work/$name-$round"
    start_shop "$dir/ordershop" "$data" --redis-port "$port"
    redis-cli -p "$port" INFO commandstats >"$data.before"
    cpu_before=$(tree_cpu "$shop")
    "$bin/ordershop-loadgen" --url "$url" --clients "$clients" \
      --duration "$duration" --format json >"$data.json" || echo "(the load run reported a failed check)"
    settle "$port" "$data.settle"
    cpu_after=$(tree_cpu "$shop")
    redis-cli -p "$port" INFO commandstats >"$data.after"
    python3 - "$name" "$round" "$data" "$cpu_before" "$cpu_after" <<'PY'
import json, os, re, sys
name, round_, data, cpu0, cpu1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
def calls(path):
    out = {}
    for line in open(path):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out
before, after = calls(data + ".before"), calls(data + ".after")
ours = json.load(open(data + ".settle"))
delta = {k: v - before.get(k, 0) - ours.get(k, 0) for k, v in after.items()}
delta = {k: v for k, v in delta.items() if v > 0}
run = json.load(open(data + ".json"))["runs"][0]
flows = max(run["flows_shipped"], 1)
top = sorted(delta.items(), key=lambda kv: -kv[1])[:int(os.environ.get("ORDERSHOP_BENCH_TOP", "8"))]
print(f"| {name} | {round_} | {run['flows_shipped']} | {run['flows_failed']} | {run['flows_per_s']:.1f} | "
      f"{run['flow_latency']['p99_ms']:.0f} | {sum(delta.values()) / flows:.0f} | {(cpu1 - cpu0) * 1000 / flows:.1f} | "
      + ", ".join(f"{k} {v / flows:.1f}" for k, v in top) + " |")
PY
    stop_shop
  done
done
