{{/* The release's full name: the release name when it holds "ramp", else "<release>-ramp". */}}
{{- define "ramp.fullname" -}}
{{- if contains "ramp" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-ramp" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ramp.serviceAccountName" -}}
{{- default (include "ramp.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "ramp.selectorLabels" -}}
app.kubernetes.io/name: ramp-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ramp.labels" -}}
{{ include "ramp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
