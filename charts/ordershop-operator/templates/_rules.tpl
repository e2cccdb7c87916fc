{{/* The operator's rules on OrderShops and their children: exactly the
     calls it makes (operator/README.md, "Permissions"). */}}
{{- define "ordershop-operator.rules" -}}
# The resource it reconciles (watched; patched to add and remove its
# finalizer), and its status (server-side apply).
- apiGroups: ["ordershop.io"]
  resources: ["ordershops"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["ordershop.io"]
  resources: ["ordershops/status"]
  verbs: ["patch"]
# Children: watched (list/watch), applied (patch; an apply that creates
# also needs create), pruned (delete). Nothing reads them one by one.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# The autoscaler reads and sets consumer replicas through the scale subresource.
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Secrets are neither listed nor watched: get reads back the generated Redis
# password and checks (and, for the autoscaler, reads) an external one;
# create/patch apply the generated one. No delete: garbage collection
# removes it with its OrderShop.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# Listed once when an OrderShop is deleted, to report the Redis volume
# claims it leaves behind (redis.storage.retainOnDelete). Never changed:
# the StatefulSet controller makes and deletes them.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies", "ingresses"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
