{{/* The operator's rules on OrderShops and their children. */}}
{{- define "ordershop-operator.rules" -}}
# The resource it reconciles, and its status (server-side apply).
- apiGroups: ["ordershop.io"]
  resources: ["ordershops"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ordershop.io"]
  resources: ["ordershops/status"]
  verbs: ["get", "patch"]
# Children: watched (list/watch), applied (create/patch), pruned (delete).
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The autoscaler sets consumer replicas through the scale subresource.
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# get: read back the generated Redis password and check external ones.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies", "ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
