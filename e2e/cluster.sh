#!/usr/bin/env bash
# e2e/cluster.sh — a real, local Kubernetes cluster without Docker.
#
# etcd + kube-apiserver + kube-controller-manager + kube-scheduler run as plain
# processes started by `kwokctl --runtime binary`, plus ONE REAL NODE: kubelet,
# containerd + runc + CNI bridge, kube-proxy (iptables), CoreDNS and
# local-path-provisioner (see e2e/cluster/node.sh). Everything runs in a
# network namespace of its own; the API server is forwarded to 127.0.0.1 of
# this machine. One kwok fake node stays for scale tests; it carries the taint
# kwok.x-k8s.io/node=fake:NoSchedule, so only pods that tolerate it (the
# OrderShop spec's `scheduling`) land there and real workloads go to the real
# node.
#
# Every binary is built from source through the Go module proxy (the only
# place, besides crates.io/PyPI/npm/apt, this machine can download from) and
# cached by version under ${ORDERSHOP_CACHE:-~/.cache/ordershop}/k8s/<version>/bin.
# The node's runtime pieces come from Debian (containerd, runc, CNI plugins,
# iptables, socat, busybox-static, buildah).
#
# Usage:
#   e2e/cluster.sh build   build every binary once (idempotent, ~tens of minutes cold)
#   e2e/cluster.sh up      build if needed, start the cluster, wait for Ready nodes
#   e2e/cluster.sh images  release-build OrderShop and import localhost/*:dev images
#   e2e/cluster.sh down    delete the cluster; no process, mount, namespace,
#                          bridge, iptables rule or container is left behind
#   e2e/cluster.sh env     print `export KUBECONFIG=... PATH=...` lines for eval
#   e2e/cluster.sh status  show the components
#   e2e/cluster.sh smoke   check the running cluster really works (~30s)
#   e2e/cluster.sh diagnose  nodes, unready pods, events and node logs
#
# Knobs (environment):
#   ORDERSHOP_CACHE          cache root (default ~/.cache/ordershop)
#   ORDERSHOP_GO_PARALLEL    go build -p (default 2: the machine has 2 shared cores)
#   ORDERSHOP_UP_TIMEOUT     seconds to wait for API server / node (default 180)
#   ORDERSHOP_APISERVER_PORT the API server's port (default 36443)
#   ORDERSHOP_NODE_DIR       the node's state (default /var/lib/ordershop-node)
set -euo pipefail

# ---- versions ---------------------------------------------------------------
# Kubernetes 1.36.1 is what kwok v0.8.0 defaults to (pkg/consts.KubeVersion),
# so kwokctl's per-version component flags match the binaries exactly.
KUBE_VERSION=1.36.1
# kwokctl pairs Kubernetes 1.34–1.36 with etcd 3.6.x; take the newest 3.6 patch.
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0
HELM_VERSION=3.22.0
# The real node's add-ons (see e2e/node.sh): both have no replace directives,
# so a plain `go install MODULE@VERSION` builds them.
COREDNS_VERSION=1.15.0
LOCAL_PATH_VERSION=0.0.30
# Bump when the way a binary is built changes, so stamps invalidate.
RECIPE_REV=1

CLUSTER_NAME=ordershop
# Absolute: these paths end up in kwokctl's saved config and the kubeconfig.
CACHE=$(realpath -m "${ORDERSHOP_CACHE:-$HOME/.cache/ordershop}")
ROOT=$CACHE/k8s/$KUBE_VERSION
BIN=$ROOT/bin
STAMPS=$ROOT/stamps
SRC=$ROOT/src
KWOKCTL_CONFIG=$ROOT/kwokctl.yaml
KUBECONFIG_PATH=$CACHE/kubeconfig
UP_TIMEOUT=${ORDERSHOP_UP_TIMEOUT:-180}
# kwokctl keeps per-cluster state (pids, logs, pki, etcd data) here.
KWOK_CLUSTER_DIR=${KWOK_WORKDIR:-$HOME/.kwok}/clusters/$CLUSTER_NAME

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=e2e/cluster/node.sh
source "$HERE/cluster/node.sh"
# shellcheck source=e2e/cluster/images.sh
source "$HERE/cluster/images.sh"
# shellcheck source=e2e/cluster/smoke.sh
source "$HERE/cluster/smoke.sh"
# shellcheck source=e2e/cluster/diagnose.sh
source "$HERE/cluster/diagnose.sh"

# ---- build ------------------------------------------------------------------

# Go settings shared by every build. Two shared cores: at most -p=2 and nice.
# GOTOOLCHAIN=local: never fetch another toolchain because some go.mod asks
# for one. CGO off: upstream ships these server binaries static too.
# Called only when something is actually built, so that `up` on a warm
# cache works without Go installed.
go_env() {
  command -v go >/dev/null || die "go is not on PATH (needed to build the binaries)"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
  export GOFLAGS="-p=${ORDERSHOP_GO_PARALLEL:-2} -trimpath -buildvcs=false"
}
# go, niced; the per-module "go: downloading/added/upgraded" chatter (hundreds
# of lines) is dropped, errors and everything else are kept.
gorun() {
  nice -n 10 go "$@" 2>&1 | sed -u -e '/^go: \(downloading\|added\|upgraded\|found\) /d' >&2
}

# modfile_of MODULE@VERSION: download it and print the path of its go.mod.
# Run inside a throwaway module of ours, so that a go.mod or go.work around
# the caller's working directory (the repo's own!) is never looked at.
modfile_of() {
  local d=$SRC/probe
  mkdir -p "$d"
  [[ -f $d/go.mod ]] || printf 'module ordershop.local/probe\n\ngo 1.22\n' >"$d/go.mod"
  (cd "$d" && GOFLAGS=-mod=mod go mod download -json "$1") |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p'
}

# A binary is skipped when it exists and its stamp holds the same recipe.
is_built() { [[ -x $BIN/$1 && -f $STAMPS/$1 && "$(cat "$STAMPS/$1")" == "$2" ]]; }
mark_built() { printf '%s\n' "$2" >"$STAMPS/$1"; }

# build_one NAME RECIPE CMD...: run CMD (which must produce $BIN/NAME) unless
# already built, and print how long it took.
build_one() {
  local name=$1 recipe=$2; shift 2
  if is_built "$name" "$recipe"; then
    log "$name: cached ($recipe)"
    return 0
  fi
  log "$name: building ($recipe) ..."
  go_env
  local t0=$SECONDS
  "$@"
  [[ -x $BIN/$name ]] || die "$name: build produced no binary"
  mark_built "$name" "$recipe"
  log "$name: built in $((SECONDS - t0))s"
}

# k8s.io/kubernetes cannot be `go install`ed: its go.mod requires ~33 staging
# modules at v0.0.0 and replaces them with ./staging/... paths, which only work
# inside the kubernetes repo. A wrapper module that requires k8s.io/kubernetes
# and replaces each staging module with its published v0.N.P tag fixes that
# (the kubernetes-sigs/scheduler-plugins pattern). The replace list is read
# from the real go.mod, so it follows whatever the version ships.
prepare_kube_module() {
  local dir=$SRC/kube mod
  # "node": the module also resolves kubelet's and kube-proxy's packages
  # (their go.sum entries are not needed by the control plane's binaries).
  [[ -f $dir/.ready && "$(cat "$dir/.ready")" == "v$KUBE_VERSION node" ]] && return 0
  log "kube wrapper module: generating from k8s.io/kubernetes@v$KUBE_VERSION go.mod"
  go_env
  local t0=$SECONDS
  rm -rf "$dir"; mkdir -p "$dir"
  mod=$(modfile_of "k8s.io/kubernetes@v$KUBE_VERSION")
  [[ -f $mod ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION go.mod"
  local goline staging
  goline=$(grep -m1 '^go ' "$mod")
  # Lines like "	k8s.io/api => ./staging/src/k8s.io/api" → "k8s.io/api".
  staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$mod")
  [[ -n $staging ]] || die "no staging replaces found in $mod"
  {
    echo "// Generated by e2e/cluster.sh: builds Kubernetes v$KUBE_VERSION binaries."
    echo "module ordershop.local/kube-build"
    echo
    echo "$goline"
    echo
    echo "require k8s.io/kubernetes v$KUBE_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m v0.${KUBE_VERSION#1.}"; done
    echo ")"
  } >"$dir/go.mod"
  log "kube wrapper module: $(wc -w <<<"$staging") staging replaces; resolving dependencies"
  (cd "$dir" && gorun get \
      "k8s.io/kubernetes/cmd/kube-apiserver@v$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@v$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kube-scheduler@v$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kubectl@v$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kubelet@v$KUBE_VERSION" \
      "k8s.io/kubernetes/cmd/kube-proxy@v$KUBE_VERSION")
  echo "v$KUBE_VERSION node" >"$dir/.ready"
  log "kube wrapper module: ready in $((SECONDS - t0))s"
}

# Same -X flags as kubernetes' hack/lib/version.sh: without them the binaries
# report v0.0.0-master, and kwokctl (which reads `--version` to pick flags),
# kubectl's skew check and clients reading /version all get it wrong.
kube_ldflags() {
  local major=${KUBE_VERSION%%.*} rest=${KUBE_VERSION#*.}
  local minor=${rest%%.*} date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local f="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    f+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "$f"
}

build_kube() { # NAME
  (cd "$SRC/kube" && gorun build -ldflags "$(kube_ldflags)" -o "$BIN/$1.tmp" "k8s.io/kubernetes/cmd/$1")
  mv "$BIN/$1.tmp" "$BIN/$1"
}

# etcd's server module also carries replace directives (../api, ../pkg, ...),
# so `go install go.etcd.io/etcd/server/v3@v3.6.x` refuses; as a dependency of
# a wrapper module those replaces are ignored and the published v3.6.x
# api/client/pkg modules it requires are used. The etcd main package is the
# root of the server module (server/main.go); etcdctl's is the etcdctl module.
prepare_etcd_module() {
  local dir=$SRC/etcd
  [[ -f $dir/.ready && "$(cat "$dir/.ready")" == "v$ETCD_VERSION" ]] && return 0
  log "etcd wrapper module: generating for go.etcd.io/etcd v$ETCD_VERSION"
  go_env
  local t0=$SECONDS
  rm -rf "$dir"; mkdir -p "$dir"
  printf '// Generated by e2e/cluster.sh: builds etcd v%s.\nmodule ordershop.local/etcd-build\n\ngo 1.26.0\n' \
    "$ETCD_VERSION" >"$dir/go.mod"
  (cd "$dir" && gorun get \
      "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" \
      "go.etcd.io/etcd/etcdctl/v3@v$ETCD_VERSION")
  echo "v$ETCD_VERSION" >"$dir/.ready"
  log "etcd wrapper module: ready in $((SECONDS - t0))s"
}

build_etcd() { # NAME PKG
  (cd "$SRC/etcd" && gorun build -ldflags "-s -w" -o "$BIN/$1.tmp" "$2")
  mv "$BIN/$1.tmp" "$BIN/$1"
}

# kwok has no replace directives: plain `go install`. Its compiled-in defaults
# (Version 0.8.0, KubeVersion 1.36.1) are already right.
build_kwok() { # NAME
  GOBIN=$BIN gorun install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/$1@v$KWOK_VERSION"
}

# helm: plain `go install`, plus the -X flags its Makefile sets; otherwise
# `helm version` says v3.22 (no patch) and `.Capabilities.KubeVersion` in
# `helm template` defaults to v1.20. The Kubernetes minor is derived, like the
# Makefile does, from the client-go version helm requires.
build_helm() {
  local mod kminor
  mod=$(modfile_of "helm.sh/helm/v3@v$HELM_VERSION")
  kminor=$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]}' "$mod")
  [[ -n $kminor ]] || die "cannot read k8s.io/client-go version from $mod"
  local p=helm.sh/helm/v3
  GOBIN=$BIN gorun install -ldflags "-s -w -X $p/internal/version.version=v$HELM_VERSION \
    -X $p/internal/version.metadata= -X $p/internal/version.gitTreeState=clean \
    -X $p/pkg/lint/rules.k8sVersionMajor=1 -X $p/pkg/lint/rules.k8sVersionMinor=$kminor \
    -X $p/pkg/chartutil.k8sVersionMajor=1 -X $p/pkg/chartutil.k8sVersionMinor=$kminor" \
    "$p/cmd/helm@v$HELM_VERSION"
}

# build_plain MODULE VERSION NAME: a module whose main package is its root
# and that has no replace directives; `go install` names the binary after
# the module's last path element, which is NAME.
build_plain() {
  GOBIN=$BIN gorun install -ldflags "-s -w" "$1@v$2"
}

cmd_build() {
  mkdir -p "$BIN" "$STAMPS" "$SRC"
  # Two concurrent callers (e.g. parallel test jobs) must not build twice.
  exec 9>"$ROOT/.build.lock"
  flock 9
  local t0=$SECONDS r
  log "build: Kubernetes v$KUBE_VERSION, etcd v$ETCD_VERSION, kwok v$KWOK_VERSION, helm v$HELM_VERSION -> $BIN"

  local kube_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy) need=0 b
  for b in "${kube_bins[@]}"; do is_built "$b" "k8s.io/kubernetes@v$KUBE_VERSION rev$RECIPE_REV" || need=1; done
  if ((need)); then prepare_kube_module; fi
  for b in "${kube_bins[@]}"; do
    build_one "$b" "k8s.io/kubernetes@v$KUBE_VERSION rev$RECIPE_REV" build_kube "$b"
  done

  r="go.etcd.io/etcd@v$ETCD_VERSION rev$RECIPE_REV"
  if ! is_built etcd "$r" || ! is_built etcdctl "$r"; then prepare_etcd_module; fi
  build_one etcd "$r" build_etcd etcd go.etcd.io/etcd/server/v3
  build_one etcdctl "$r" build_etcd etcdctl go.etcd.io/etcd/etcdctl/v3

  build_one kwok "sigs.k8s.io/kwok@v$KWOK_VERSION rev$RECIPE_REV" build_kwok kwok
  build_one kwokctl "sigs.k8s.io/kwok@v$KWOK_VERSION rev$RECIPE_REV" build_kwok kwokctl
  build_one helm "helm.sh/helm/v3@v$HELM_VERSION rev$RECIPE_REV" build_helm
  build_one coredns "github.com/coredns/coredns@v$COREDNS_VERSION rev$RECIPE_REV" \
    build_plain github.com/coredns/coredns "$COREDNS_VERSION" coredns
  build_one local-path-provisioner "github.com/rancher/local-path-provisioner@v$LOCAL_PATH_VERSION rev$RECIPE_REV" \
    build_plain github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION" local-path-provisioner

  write_kwokctl_config
  flock -u 9
  log "build: done in $((SECONDS - t0))s ($(du -sh "$BIN" | cut -f1) of binaries)"
}

# Every binary kwokctl could ever want, pointed at the cache. Any option left
# empty defaults to a github.com / dl.k8s.io URL, which is unreachable here.
# etcdutl and kectl are only used by `kwokctl snapshot`; they are not built,
# and pointing them at a missing local path makes such a use fail at once
# instead of trying the network.
write_kwokctl_config() {
  cat >"$KWOKCTL_CONFIG.tmp" <<EOF
# Generated by e2e/cluster.sh — all binaries local, nothing downloaded.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: v$KUBE_VERSION
  etcdVersion: $ETCD_VERSION
  kwokVersion: v$KWOK_VERSION
  # Loopback of the cluster's network namespace (kwokctl's default is
  # 0.0.0.0); the API server alone also listens on the node's address, for
  # pods (below).
  bindAddress: 127.0.0.1
  kubeApiserverPort: $APISERVER_PORT
  # Pods reach the API server as the \`kubernetes\` Service or the node IP.
  kubeApiserverCertSANs: [$NODE_IP, $KUBERNETES_SERVICE_IP]
  kubeApiserverBinary: $BIN/kube-apiserver
  kubeControllerManagerBinary: $BIN/kube-controller-manager
  kubeSchedulerBinary: $BIN/kube-scheduler
  kubectlBinary: $BIN/kubectl
  kwokControllerBinary: $BIN/kwok
  etcdBinary: $BIN/etcd
  etcdctlBinary: $BIN/etcdctl
  etcdutlBinary: $BIN/etcdutl-not-built
  kectlBinary: $BIN/kectl-not-built
componentsPatches:
- name: kube-apiserver
  extraArgs:
  # Inside the cluster's own network namespace: reachable from pods, never
  # from outside this machine.
  - {key: bind-address, value: 0.0.0.0, override: true}
  - {key: advertise-address, value: $NODE_IP}
  # kubectl logs/exec/port-forward: the kubelet trusts the cluster CA.
  - {key: kubelet-client-certificate, value: $KWOK_CLUSTER_DIR/pki/admin.crt}
  - {key: kubelet-client-key, value: $KWOK_CLUSTER_DIR/pki/admin.key}
  # The node's name resolves nowhere; its address is what to dial.
  - {key: kubelet-preferred-address-types, value: InternalIP}
  # A namespace's annotations can send all of its pods to the fake node
  # (scale tests with made-up images) without touching their specs.
  - {key: enable-admission-plugins, value: "PodNodeSelector,PodTolerationRestriction"}
- name: kwok-controller
  extraArgs:
  # Fake only kwok's own nodes, never the real one.
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-label-selector, value: type=kwok}
EOF
  mv "$KWOKCTL_CONFIG.tmp" "$KWOKCTL_CONFIG"
}

# ---- cluster ------------------------------------------------------------------

# kwokctl with our config.
# - PATH: kwokctl runs `kubectl` from PATH in preference to its kubectlBinary
#   option (to probe the API server); a foreign kubectl (this machine has
#   gcloud's dispatcher in /usr/bin) must not be picked, so ours comes first.
# - HTTP(S)_PROXY points at a closed loopback port: should kwokctl still try
#   to download anything, it fails at once with a clear error instead of
#   hanging on an unreachable host. Loopback traffic (all of the control
#   plane's) never goes through a proxy in Go.
# - kwokctl logs JSON when stderr is not a terminal; kwok_log turns each line
#   into a short "[cluster]   kwokctl LEVEL: msg: err" line. stdout is untouched.
kwokctl() {
  local conf=()
  [[ -f $KWOKCTL_CONFIG ]] && conf=(--config "$KWOKCTL_CONFIG")
  # Inside the cluster's network namespace: every component it starts
  # inherits it.
  # The components inherit these: the API server's own connections to the
  # kubelet (logs, exec, port-forward) go straight to the node.
  { PATH="$BIN:$PATH" HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY="$NODE_IP,$CLUSTER_CIDR,$SERVICE_CIDR" \
      in_ns "$BIN/kwokctl" "${conf[@]}" --name "$CLUSTER_NAME" "$@" 2>&1 1>&3 3>&- |
      kwok_log >&2; } 3>&1
}
kwok_log() {
  sed -u -E \
    -e 's/^\{.*"level":"([A-Z]+)".*"msg":"([^"]*)".*"err":"([^"]*)".*$/[cluster]   kwokctl \1: \2: \3/' \
    -e 's/^\{.*"level":"([A-Z]+)".*"msg":"([^"]*)".*$/[cluster]   kwokctl \1: \2/'
}
kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# wait_for DESCRIPTION CMD...: retry CMD every second until UP_TIMEOUT.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + UP_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${UP_TIMEOUT}s waiting for $what (logs: $KWOK_CLUSTER_DIR/logs)"
    sleep 1
  done
}

KWOK_TAINT=kwok.x-k8s.io/node=fake:NoSchedule
has_kwok_node() { [[ -n "$(kc get nodes -l type=kwok -o name 2>/dev/null)" ]]; }

write_kubeconfig() {
  kwokctl get kubeconfig >"$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
  chmod 600 "$KUBECONFIG_PATH"
}

# Processes of this cluster: every component's command line carries the
# cluster's work dir (binary symlinks, certs, data dir).
cluster_pids() { pgrep -f -- "$KWOK_CLUSTER_DIR/" || true; }

# kwokctl decides "running" by sending signal 0 to the pid in its pid file.
# After a reboot that pid may belong to an unrelated process (which
# `kwokctl delete` would then kill), and right after a crash it may be an
# unreaped zombie (so `create` would not restart the component). Drop every
# pid file whose process is not really one of ours.
sanitize_pid_files() {
  local f p
  for f in "$KWOK_CLUSTER_DIR"/pids/*.pid; do
    [[ -f $f ]] || continue
    p=$(tr -dc 0-9 <"$f")
    if [[ -z $p ]] || ! tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$KWOK_CLUSTER_DIR/"; then
      rm -f "$f"
    fi
  done
}

# Does the existing cluster answer, with the binaries of this cache?
existing_cluster_ok() {
  [[ -f $KWOK_CLUSTER_DIR/kwok.yaml ]] || return 1
  [[ -e /run/netns/$NODE_NS ]] || { log "up: the cluster's network namespace is gone"; return 1; }
  if ! grep -qF "$BIN/kube-apiserver" "$KWOK_CLUSTER_DIR/kwok.yaml"; then
    log "up: existing cluster '$CLUSTER_NAME' was made with other binaries"
    return 1
  fi
  # Every component must still be running: an API server alone (say, the
  # scheduler crashed) would leave Pods Pending forever.
  sanitize_pid_files
  local want have
  want=$(kwokctl get components 2>/dev/null | wc -l)
  have=$(find "$KWOK_CLUSTER_DIR/pids" -name '*.pid' 2>/dev/null | wc -l)
  if ((want == 0 || have != want)); then
    log "up: existing cluster '$CLUSTER_NAME' has $have of $want components running"
    return 1
  fi
  write_kubeconfig 2>/dev/null || return 1
  if ! kc --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    log "up: existing cluster '$CLUSTER_NAME' does not answer (stopped, crashed or rebooted)"
    return 1
  fi
}

cmd_up() {
  local t0=$SECONDS
  cmd_build
  if [[ -d $KWOK_CLUSTER_DIR ]]; then
    if existing_cluster_ok; then
      log "up: cluster '$CLUSTER_NAME' is already running; reusing it"
    else
      # An e2e cluster's state is disposable: a fresh one is the most
      # reliable way back (ports, pids and certs all start clean).
      log "up: recreating it"
      cmd_down
    fi
  fi
  node_require_tools
  netns_up
  forwarder_up
  if [[ ! -d $KWOK_CLUSTER_DIR ]]; then
    log "up: creating cluster '$CLUSTER_NAME' (kwokctl --runtime binary, state in $KWOK_CLUSTER_DIR)"
    # --kubeconfig= keeps kwokctl from editing ~/.kube/config; we write our
    # own file. Readiness is waited for below, with our own checks.
    kwokctl create cluster --runtime binary --kubeconfig= --wait 0s --timeout "${UP_TIMEOUT}s"
    write_kubeconfig
  fi

  log "up: waiting for the API server"
  wait_for "kube-apiserver /readyz" kc get --raw /readyz
  # kwokctl creates no node by itself; one fake node (32 CPU, 256Gi, 110
  # pods) holds the pods of scale tests. Its address is loopback so nothing
  # ever dials a made-up IP for it.
  if ! has_kwok_node; then
    log "up: creating a kwok fake node"
    kwokctl scale node --replicas 1 --param '.nodeIPs=["127.0.0.1"]' </dev/null
  fi
  # Only pods that ask for the fake node (tolerate this taint) land there.
  kc taint nodes -l type=kwok --overwrite "$KWOK_TAINT" >/dev/null
  log "up: waiting for the fake node to be Ready"
  wait_for "a Ready kwok node" kc wait --for=condition=Ready node -l type=kwok --timeout=5s
  node_up
  # The controller-manager creates the default ServiceAccount; until it
  # exists, creating a Pod in the namespace is refused.
  wait_for "default ServiceAccount" kc get serviceaccount default -n default
  log "up: cluster ready in $((SECONDS - t0))s (server $(kc version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1))"
  log "up: use it with:  eval \"\$(e2e/cluster.sh env)\""
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
}

# Of PIDS, those that still exist in any state (a zombie too: `pgrep -a kube`
# would still list it).
alive() { local p; for p in "$@"; do [[ -e /proc/$p ]] && echo "$p"; done; true; }
# wait_gone SECONDS PIDS...: wait until none of PIDS exists.
wait_gone() {
  local deadline=$((SECONDS + $1)); shift
  while [[ -n "$(alive "$@")" ]] && ((SECONDS < deadline)); do sleep 0.2; done
  [[ -z "$(alive "$@")" ]]
}

cmd_down() {
  local pids
  # The node first: its pods and daemons, while the API server still answers.
  node_stop
  pids=$(cluster_pids)
  if [[ -x $BIN/kwokctl && -f $KWOK_CLUSTER_DIR/kwok.yaml ]]; then
    log "down: deleting cluster '$CLUSTER_NAME'"
    sanitize_pid_files
    # delete insists on a kubeconfig to remove its context from (an empty
    # value is an error); give it ours, never ~/.kube/config.
    touch "$KUBECONFIG_PATH"
    kwokctl delete cluster --kubeconfig "$KUBECONFIG_PATH" || log "down: kwokctl delete failed; cleaning up by hand"
  else
    log "down: no cluster '$CLUSTER_NAME'"
  fi
  # kwokctl signals the components and returns before they have exited.
  # Wait for them (and for init to reap them); end by pid anything that
  # survives.
  # shellcheck disable=SC2086,SC2046 # pid lists are meant to split
  if [[ -n $pids ]] && ! wait_gone 20 $pids; then
    log "down: stopping leftover processes: $(alive $pids | tr '\n' ' ')"
    kill $(alive $pids) 2>/dev/null || true
    wait_gone 10 $pids || kill -9 $(alive $pids) 2>/dev/null || true
    wait_gone 5 $pids || log "down: WARNING: still present: $(alive $pids | tr '\n' ' ')"
  fi
  rm -rf "$KWOK_CLUSTER_DIR"
  rm -f "$KUBECONFIG_PATH"
  netns_down
  node_leftovers || die "down: the cluster left something behind (see above)"
  log "down: done"
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
  echo "export PATH=$BIN:\$PATH"
  # The real node's containerd, for tests that freeze a container.
  echo "export ORDERSHOP_NODE_CTR='ctr --address $CONTAINERD_SOCK'"
}

cmd_status() {
  [[ -x $BIN/kwokctl ]] || die "not built yet: run e2e/cluster.sh build"
  kwokctl get components
  local d p
  for d in containerd kubelet kube-proxy coredns local-path-provisioner apiserver-forwarder; do
    p=$(cat "$NODE_RUN/$d.pid" 2>/dev/null || true)
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then echo "$d running (pid $p)"; else echo "$d stopped"; fi
  done
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  images) cmd_images ;;
  diagnose) cmd_diagnose ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  smoke) cmd_smoke ;;
  *) echo "usage: $0 {build|up|images|down|env|status|smoke|diagnose}" >&2; exit 2 ;;
esac
