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
  kc get pods -A -o wide 2>&1 | awk 'NR == 1 || $3 !~ /^([0-9]+)\/\1$/ || $4 != "Running"' || true
  section "OrderShops"
  kc get ordershops -A -o wide 2>&1 || true
  section "last 60 events"
  kc get events -A --sort-by=.lastTimestamp 2>&1 | tail -60 || true
  local d
  for d in kubelet containerd kube-proxy coredns local-path-provisioner; do
    section "node: $d (last 25 lines of $NODE_LOGS/$d.log)"
    tail -25 "$NODE_LOGS/$d.log" 2>/dev/null || true
  done
  section "in-cluster operator logs"
  kc logs -A -l app.kubernetes.io/name=ordershop-operator --tail=40 --prefix 2>&1 || true
}
