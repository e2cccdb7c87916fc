# e2e/cluster/diagnose.sh — `e2e/cluster.sh diagnose`: what the cluster looks
# like, for a failed run's log (the e2e runner calls it before `down`).
# Sourced by e2e/cluster.sh.

cmd_diagnose() {
  [[ -s $KUBECONFIG_PATH ]] || { log "diagnose: no cluster"; return 0; }
  local section
  section() { printf '\n===== %s\n' "$*"; }
  section "nodes"
  kc get nodes -o wide 2>&1 || true
  section "pods that are not Ready"
  kc get pods -A -o wide 2>&1 | awk 'NR == 1 {print; next} {split($3, r, "/")} r[1] != r[2] || $4 != "Running"' || true
  section "OrderShops"
  kc get ordershops -A -o wide 2>&1 || true
  section "last 60 events"
  kc get events -A --sort-by=.lastTimestamp 2>&1 | tail -60 || true
  local d
  for d in kubelet containerd kube-proxy coredns local-path-provisioner; do
    section "node: $d (last 25 lines of $NODE_LOGS/$d.log)"
    tail -25 "$NODE_LOGS/$d.log" 2>/dev/null || true
  done
  # Logs of every pod that is not Ready (the operator's too), last lines.
  local ns pod
  while read -r ns pod; do
    section "logs: $ns/$pod (last 30 lines)"
    kc logs -n "$ns" "$pod" --all-containers --tail=30 2>&1 | cut -c1-400 || true
  done < <(kc get pods -A --no-headers 2>/dev/null |
    awk '{split($3, r, "/")} r[1] != r[2] || $2 ~ /ordershop-operator/ {print $1, $2}' | head -20)
}
