{{/* The release's full name: <release>-hutch, or the release name when it already says hutch. */}}
{{- define "hutch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hutch.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of the chart's own objects. Never "managed-by: hutch": that marks sandbox pods. */}}
{{- define "hutch.labels" -}}
{{ include "hutch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "hutch.serviceAccountName" -}}
{{- default (include "hutch.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "hutch.sandboxNamespace" -}}
{{- default .Release.Namespace .Values.sandboxNamespace -}}
{{- end -}}

{{- define "hutch.keysSecret" -}}
{{- default (printf "%s-keys" (include "hutch.fullname" .)) .Values.keys.existingSecret -}}
{{- end -}}

{{/* The cluster-scoped RBAC names carry the sandbox namespace: one installation per namespace. */}}
{{- define "hutch.clusterRoleName" -}}
{{- printf "%s-%s" (include "hutch.fullname" .) (include "hutch.sandboxNamespace" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
