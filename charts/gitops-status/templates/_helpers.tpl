{{/* Names, labels and URLs shared by the templates. */}}

{{- define "gitops-status.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gitops-status.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gitops-status.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gitops-status.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gitops-status.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gitops-status.labels" -}}
helm.sh/chart: {{ include "gitops-status.chart" . }}
{{ include "gitops-status.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gitops-status.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gitops-status.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gitops-status.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The in-cluster base URL, without a port when the service listens on 80. */}}
{{- define "gitops-status.url" -}}
{{- $host := printf "%s.%s.svc.cluster.local" (include "gitops-status.fullname" .) .Release.Namespace }}
{{- if eq (int .Values.service.port) 80 }}
{{- printf "http://%s" $host }}
{{- else }}
{{- printf "http://%s:%d" $host (int .Values.service.port) }}
{{- end }}
{{- end }}

{{/* "true" with PostgreSQL (database.url.existingSecret is set), empty with SQLite. */}}
{{- define "gitops-status.postgres" -}}
{{- if .Values.database.url.existingSecret }}true{{ end }}
{{- end }}

{{- define "gitops-status.claimName" -}}
{{- default (printf "%s-data" (include "gitops-status.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
