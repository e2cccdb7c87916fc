# e2e/cluster/smoke.sh — `e2e/cluster.sh smoke`: a quick proof that the
# running cluster really works. Sourced by e2e/cluster.sh.

smoke_ok() { log "smoke: ok - $*"; }
# until_true DESCRIPTION CMD...: CMD must succeed within 90s.
until_true() {
  local what=$1 i; shift
  for ((i = 0; i < 90; i++)); do "$@" >/dev/null 2>&1 && { smoke_ok "$what"; return 0; }; sleep 1; done
  die "smoke: FAILED - $what"
}

SMOKE_NS=cluster-smoke
count_is() { [[ "$(kc -n "$SMOKE_NS" get "$2" -l "$3" -o name 2>/dev/null | wc -l)" == "$1" ]]; }
ready_pods_are() { [[ "$(kc -n "$SMOKE_NS" get pods -l "$2" --no-headers 2>/dev/null | awk '$2 == "1/1" && $3 == "Running"' | wc -l)" == "$1" ]]; }
cm_gone() { ! kc -n "$SMOKE_NS" get configmap "$1" >/dev/null 2>&1; }
client_read() { [[ "$(kc -n "$SMOKE_NS" logs client 2>/dev/null)" == written-to-volume ]]; }

# The control plane with the fake node: controllers, scheduler, kwok,
# garbage collector, scaling.
smoke_control_plane() {
  local uid
  until_true "a kwok node is Ready" kc wait --for=condition=Ready node -l type=kwok --timeout=1s
  kc -n "$SMOKE_NS" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: nginx, image: nginx:1.27}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: redis, image: redis:7}]
EOF
  until_true "Deployment made one ReplicaSet" count_is 1 replicasets app=web
  until_true "Deployment's 2 Pods are Running and Ready (kwok)" ready_pods_are 2 app=web
  until_true "StatefulSet's 2 Pods are Running and Ready (kwok)" ready_pods_are 2 app=db
  kc -n "$SMOKE_NS" scale deployment web --replicas=3 >/dev/null
  until_true "kubectl scale to 3 gives 3 Ready Pods" ready_pods_are 3 app=web
  kc -n "$SMOKE_NS" delete deployment web --wait=false >/dev/null
  until_true "deleting the Deployment garbage-collects its ReplicaSet" count_is 0 replicasets app=web
  until_true "... and its Pods" count_is 0 pods app=web
  kc -n "$SMOKE_NS" create configmap owner >/dev/null
  uid=$(kc -n "$SMOKE_NS" get configmap owner -o jsonpath='{.metadata.uid}')
  kc -n "$SMOKE_NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: $uid}]
EOF
  kc -n "$SMOKE_NS" delete configmap owner >/dev/null
  until_true "an object owned by a deleted owner is garbage-collected" cm_gone owned
}

# The real node: a pod on a dynamically provisioned volume serves HTTP
# through a Service; another pod resolves it by name (CoreDNS) and reads it
# back through the Service (kube-proxy); exec goes API server → kubelet.
smoke_real_node() {
  until_true "the real node is Ready" node_ready
  kc -n "$SMOKE_NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
  - name: httpd
    image: $BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: [sh, -c, 'echo written-to-volume > /data/index.html && exec busybox httpd -f -p 8080 -h /data']
    readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{port: 80, targetPort: 8080}]
EOF
  until_true "a pod on the real node is Ready on a provisioned volume" \
    kc -n "$SMOKE_NS" wait --for=condition=Ready pod/server --timeout=1s
  [[ $(kc -n "$SMOKE_NS" get pod server -o jsonpath='{.spec.nodeName}') == "$NODE_NAME" ]] ||
    die "smoke: FAILED - the pod did not land on $NODE_NAME"
  smoke_ok "its PVC is Bound to $(kc -n "$SMOKE_NS" get pvc data -o jsonpath='{.spec.volumeName}')"
  kc -n "$SMOKE_NS" run client --image="$BUSYBOX_IMAGE" --image-pull-policy=Never --restart=Never \
    --command -- sh -c "wget -qO- http://server.$SMOKE_NS.svc.cluster.local/index.html" >/dev/null
  until_true "a second pod resolves the Service by name and reads the volume through it" client_read
  until_true "kubectl exec reaches the container" kc -n "$SMOKE_NS" exec server -- cat /data/index.html
}

cmd_smoke() {
  [[ -s $KUBECONFIG_PATH ]] || die "no cluster: run e2e/cluster.sh up first"
  local t0=$SECONDS
  kc delete namespace "$SMOKE_NS" --ignore-not-found --wait=true >/dev/null
  kc create namespace "$SMOKE_NS" >/dev/null
  until_true "default ServiceAccount exists in $SMOKE_NS" kc -n "$SMOKE_NS" get serviceaccount default
  smoke_control_plane
  smoke_real_node
  until_true "helm runs ($("$BIN/helm" version --template '{{.Version}}' 2>/dev/null))" "$BIN/helm" version
  kc delete namespace "$SMOKE_NS" --wait=false >/dev/null
  log "smoke: all checks passed in $((SECONDS - t0))s"
}
