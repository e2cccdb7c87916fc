{{/* Full name: the release name when it already names the chart. */}}
{{- define "ordershop-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
Selector labels. app.kubernetes.io/name is fixed to "ordershop-operator":
the Redis NetworkPolicy of every OrderShop admits pods with that label from
the operator's namespace (the autoscaler measures Redis).
*/}}
{{- define "ordershop-operator.selectorLabels" -}}
app.kubernetes.io/name: ordershop-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ordershop-operator.labels" -}}
{{ include "ordershop-operator.selectorLabels" . }}
app.kubernetes.io/part-of: ordershop
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ordershop-operator.serviceAccountName" -}}
{{- default (include "ordershop-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}
