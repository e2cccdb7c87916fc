# e2e/cluster/node.sh — the local cluster's network namespace and its one
# real node. Sourced by e2e/cluster.sh (which defines log, die, BIN, CACHE,
# KUBECONFIG_PATH, ...); not meant to run on its own.
#
# Shape (what kind does with a node container, without a container engine):
#
#   root namespace                       network namespace "ordershop-k8s"
#   ──────────────                       ─────────────────────────────────────────
#   kubectl, helm, tests                 etcd, kube-apiserver (:APISERVER_PORT),
#     │                                  controller-manager, scheduler, kwok
#     └─ 127.0.0.1:APISERVER_PORT ──────▶ 127.0.0.1:APISERVER_PORT
#        (socat, one forwarder)          node0 = NODE_IP (veth): kubelet :10250,
#                                        CoreDNS :53, kube-proxy (iptables)
#                                        cni0 = POD_GATEWAY (bridge) ── pods
#
# Everything that listens or routes lives in a namespace this script made and
# deletes: the namespace has no interface to the outside, so no pod, Service
# or DNS query can ever reach an address off this machine, and `down` removes
# every veth, bridge and iptables rule with the namespace.
#
# Containers: Debian's containerd 1.6 + runc with its own root, state and
# socket (never a system containerd's), cgroupfs driver on this cgroup v1
# host. DNS: CoreDNS as a host process of the node (like kube-proxy, not a
# pod): it needs no image and answers before the first pod starts; it only
# knows cluster.local and forwards nothing. Storage: local-path-provisioner,
# also a host process, with a default StorageClass `local-path`.

NODE_NS=ordershop-k8s
NODE_NAME=ordershop-node
# Addresses exist only inside NODE_NS.
NODE_IP=10.87.0.2
POD_SUBNET=10.244.0.0/24
POD_GATEWAY=10.244.0.1
CLUSTER_CIDR=10.244.0.0/16
# kube-apiserver's default --service-cluster-ip-range; its first address is
# the `kubernetes` Service.
SERVICE_CIDR=10.0.0.0/24
KUBERNETES_SERVICE_IP=10.0.0.1
APISERVER_PORT=${ORDERSHOP_APISERVER_PORT:-36443}

# State of the node. The kubelet bind-mounts inside its root dir and
# containerd keeps overlay mounts in its own: both are unmounted by `down`.
NODE_DIR=${ORDERSHOP_NODE_DIR:-/var/lib/ordershop-node}
NODE_RUN=/run/ordershop-node
CONTAINERD_SOCK=$NODE_RUN/containerd/containerd.sock
NODE_LOGS=$NODE_DIR/logs
# Small images assembled here (see images.sh): the pod sandbox and the
# volume helper.
PAUSE_IMAGE=localhost/pause:dev
BUSYBOX_IMAGE=localhost/busybox:dev

in_ns() { nsenter --net="/run/netns/$NODE_NS" "$@"; }
ctr_node() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

node_require_tools() {
  local missing=() t
  for t in containerd containerd-shim-runc-v2 runc ctr iptables socat nsenter buildah busybox; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback && -x /usr/lib/cni/portmap ]] ||
    missing+=(containernetworking-plugins)
  ((${#missing[@]} == 0)) || die "the real node needs: ${missing[*]} (apt-get install containerd runc containernetworking-plugins iptables conntrack socat busybox-static buildah)"
  [[ $(id -u) == 0 ]] || die "the real node needs root (network namespace, mounts, containerd)"
}

# ---- network namespace ---------------------------------------------------------

netns_up() {
  if [[ ! -e /run/netns/$NODE_NS ]]; then
    log "node: creating network namespace $NODE_NS"
    ip netns add "$NODE_NS"
  fi
  in_ns ip link set lo up
  # The node's address needs an interface that is up; this kernel has no
  # dummy links, so a veth pair with both ends in the namespace serves.
  if ! in_ns ip link show node0 >/dev/null 2>&1; then
    in_ns ip link add node0 type veth peer name node0-peer
    in_ns ip addr add "$NODE_IP/24" dev node0
  fi
  in_ns ip link set node0-peer up
  in_ns ip link set node0 up
  # Pods reach Services and each other through this namespace's iptables;
  # replies between pods on the bridge must pass them too (br_netfilter).
  in_ns sysctl -qw net.ipv4.ip_forward=1
  in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null ||
    log "node: WARNING: net.bridge.bridge-nf-call-iptables is not settable; pod-to-Service replies may break"
}

# The API server listens inside the namespace; tests, kubectl and helm reach
# it on the same loopback port of the root namespace through one forwarder.
forwarder_pidfile() { echo "$NODE_RUN/apiserver-forwarder.pid"; }
forwarder_up() {
  local pidfile
  pidfile=$(forwarder_pidfile)
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  if ss -Hltn "sport = :$APISERVER_PORT" | grep -q .; then
    die "127.0.0.1:$APISERVER_PORT is taken in the root namespace; set ORDERSHOP_APISERVER_PORT"
  fi
  mkdir -p "$NODE_RUN" "$NODE_LOGS"
  setsid socat "TCP-LISTEN:$APISERVER_PORT,bind=127.0.0.1,reuseaddr,fork" \
    "EXEC:nsenter --net=/run/netns/$NODE_NS socat STDIO TCP\\:127.0.0.1\\:$APISERVER_PORT" \
    </dev/null >>"$NODE_LOGS/forwarder.log" 2>&1 &
  echo $! >"$pidfile"
}

# ---- containerd ------------------------------------------------------------------

write_containerd_config() {
  mkdir -p "$NODE_DIR/containerd" "$NODE_RUN/containerd" "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  cat >"$NODE_DIR/containerd/config.toml" <<EOF
# Generated by e2e/cluster.sh: the local node's own containerd.
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj, so
  # every sandbox would fail; rootless kind sets the same.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  # No masquerading (nothing leaves the namespace); hairpin so a pod can
  # reach itself through its Service.
  cat >"$NODE_DIR/cni/net.d/10-ordershop.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "ordershop",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# start_daemon NAME CMD...: run CMD in the node's namespace, detached, logging
# to $NODE_LOGS/NAME.log, pid in $NODE_RUN/NAME.pid.
start_daemon() {
  local name=$1; shift
  local pidfile=$NODE_RUN/$name.pid
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  mkdir -p "$NODE_RUN" "$NODE_LOGS"
  setsid nsenter --net="/run/netns/$NODE_NS" "$@" </dev/null >>"$NODE_LOGS/$name.log" 2>&1 &
  echo $! >"$pidfile"
}

containerd_up() {
  write_containerd_config
  start_daemon containerd containerd --config "$NODE_DIR/containerd/config.toml"
  local deadline=$((SECONDS + 60))
  until ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "containerd did not start (log: $NODE_LOGS/containerd.log)"
    sleep 0.5
  done
}

# ---- kubelet, kube-proxy, DNS, storage ----------------------------------------

pki_dir() { echo "$KWOK_CLUSTER_DIR/pki"; }

write_kubelet_config() {
  mkdir -p "$NODE_DIR/kubelet"
  cat >"$NODE_DIR/kubelet/config.yaml" <<EOF
# Generated by e2e/cluster.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host has cgroup v1 and no systemd as PID 1.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
# Pods with dnsPolicy Default get no upstream resolver: nothing here may
# resolve or reach names off this machine.
resolvConf: ""
# The API server authenticates to the kubelet (logs, exec, port-forward)
# with the cluster's client certificate; the kubelet asks it to authorise.
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $(pki_dir)/ca.crt}
authorization: {mode: Webhook}
# A shared development disk: never evict or garbage-collect images for it.
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
}

write_proxy_config() {
  mkdir -p "$NODE_DIR/kube-proxy"
  cat >"$NODE_DIR/kube-proxy/config.yaml" <<EOF
# Generated by e2e/cluster.sh.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBECONFIG_PATH}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $CLUSTER_CIDR
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Conntrack limits are the host's business, not a test cluster's.
conntrack: {maxPerCore: 0, min: 0}
EOF
}

write_corefile() {
  mkdir -p "$NODE_DIR/coredns"
  cat >"$NODE_DIR/coredns/Corefile" <<EOF
# Generated by e2e/cluster.sh: cluster names only, no forwarding.
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_PATH
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# The provisioner's helper pods run setup/teardown scripts from this
# ConfigMap in the busybox image assembled here.
apply_storage() {
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  config.json: |-
    {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$NODE_DIR/volumes"]}]}
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata: {name: helper-pod}
    spec:
      priorityClassName: system-node-critical
      tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
      containers:
      - name: helper-pod
        image: $BUSYBOX_IMAGE
        imagePullPolicy: Never
EOF
}

node_ready() { kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; }

# Starts the node's daemons (idempotent: running ones are kept).
node_up() {
  node_require_tools
  containerd_up
  node_base_images
  write_kubelet_config
  write_proxy_config
  write_corefile
  mkdir -p "$NODE_DIR/volumes"
  start_daemon kubelet "$BIN/kubelet" --config "$NODE_DIR/kubelet/config.yaml" \
    --kubeconfig "$KUBECONFIG_PATH" --root-dir "$NODE_DIR/kubelet/root" \
    --cert-dir "$NODE_DIR/kubelet/pki" --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" --node-labels ordershop.io/real-node=true --v=1
  start_daemon kube-proxy "$BIN/kube-proxy" --config "$NODE_DIR/kube-proxy/config.yaml" --v=1
  start_daemon coredns "$BIN/coredns" -conf "$NODE_DIR/coredns/Corefile" -dns.port 53
  apply_storage
  start_daemon local-path-provisioner "$BIN/local-path-provisioner" start \
    --kubeconfig "$KUBECONFIG_PATH" --namespace local-path-storage \
    --helper-image "$BUSYBOX_IMAGE" --service-account-name default
  log "up: waiting for the real node $NODE_NAME to be Ready"
  wait_for "node $NODE_NAME Ready (logs: $NODE_LOGS)" node_ready
}

# ---- teardown ----------------------------------------------------------------------

# stop_daemon NAME: SIGTERM, then SIGKILL after 10 s.
stop_daemon() {
  local pidfile=$NODE_RUN/$1.pid p
  [[ -f $pidfile ]] || return 0
  p=$(cat "$pidfile")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    wait_gone 10 "$p" || { kill -9 "$p" 2>/dev/null || true; wait_gone 5 "$p" || true; }
  fi
  rm -f "$pidfile"
}

# Every container of the node is killed before containerd stops; shims
# outlive containerd otherwise.
kill_containers() {
  [[ -S $CONTAINERD_SOCK ]] || return 0
  local tasks t
  tasks=$(ctr_node tasks ls -q 2>/dev/null || true)
  for t in $tasks; do ctr_node tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  for t in $tasks; do
    local i
    for ((i = 0; i < 50; i++)); do
      ctr_node tasks delete "$t" >/dev/null 2>&1 && break
      # CRI deletes the task of a container that exited by itself.
      ctr_node tasks ls -q 2>/dev/null | grep -qxF "$t" || break
      sleep 0.2
    done
  done
  local containers
  containers=$(ctr_node containers ls -q 2>/dev/null || true)
  for t in $containers; do ctr_node containers delete "$t" >/dev/null 2>&1 || true; done
}

# Shims of this containerd (they carry its socket address on their command
# line), in case a task could not be deleted.
kill_shims() {
  local pids
  pids=$(pgrep -f -- "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true)
  # shellcheck disable=SC2086
  [[ -z $pids ]] || { kill -9 $pids 2>/dev/null || true; wait_gone 5 $pids || true; }
}

unmount_under() { # DIR: every mount point at or below DIR, deepest first
  local dir=$1 m
  [[ -d $dir ]] || return 0
  for m in $(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "down: WARNING: cannot unmount $m"
  done
}

# Pod network namespaces containerd pinned under /run/netns (cni-<uuid>);
# no other CNI user runs on this machine.
remove_pod_netns() {
  local n
  for n in /run/netns/cni-*; do
    [[ -e $n ]] || continue
    umount "$n" 2>/dev/null || true
    rm -f "$n"
  done
}

# Empty cgroups the kubelet made (cgroupfs driver: /kubepods in every v1
# hierarchy), leaves first.
remove_kubelet_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# Stops the node: daemons, every container, mounts. The namespace stays
# until the control plane in it has stopped (netns_down).
node_stop() {
  stop_daemon local-path-provisioner
  stop_daemon coredns
  stop_daemon kubelet
  stop_daemon kube-proxy
  kill_containers
  kill_shims
  stop_daemon containerd
  kill_shims
  unmount_under "$NODE_DIR/kubelet/root"
  unmount_under "$NODE_DIR/containerd"
  remove_pod_netns
  remove_kubelet_cgroups
}

netns_down() {
  stop_daemon apiserver-forwarder
  if [[ -e /run/netns/$NODE_NS ]]; then
    # Anything still in the namespace (a component kwokctl failed to stop)
    # would keep it alive.
    local left
    left=$(ip netns pids "$NODE_NS" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [[ -z $left ]] || { log "down: killing what is left in $NODE_NS: $left"; kill -9 $left 2>/dev/null || true; wait_gone 5 $left || true; }
    ip netns delete "$NODE_NS" || log "down: WARNING: cannot delete network namespace $NODE_NS"
  fi
  unmount_under "$NODE_RUN"
  # Images stay in containerd's root (imported once per build); runtime
  # state and volumes go.
  rm -rf "$NODE_RUN" "$NODE_DIR/kubelet/root" "$NODE_DIR/cni/ipam" "$NODE_DIR/volumes"
}

# What `down` must leave behind: nothing. Prints what is left, fails if any.
node_leftovers() {
  local left=()
  [[ -e /run/netns/$NODE_NS ]] && left+=("netns $NODE_NS")
  compgen -G "/run/netns/cni-*" >/dev/null && left+=("pod netns")
  pgrep -f -- "$CONTAINERD_SOCK" >/dev/null && left+=("containerd/shims")
  pgrep -f -- "$NODE_DIR/" >/dev/null && left+=("node processes")
  awk -v d="$NODE_DIR" 'index($5, d) == 1' /proc/self/mountinfo | grep -q . && left+=("mounts under $NODE_DIR")
  ip link show cni0 >/dev/null 2>&1 && left+=("bridge cni0 in the root namespace")
  ((${#left[@]} == 0)) || { log "down: left behind: ${left[*]}"; return 1; }
}
