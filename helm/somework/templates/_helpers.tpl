{{- define "somework.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object (<prefix>-frontend, <prefix>-backend), as the upstream
collector chart makes a fullname: fullnameOverride, else the release name when
it holds the chart's name (the release "somework", which scripts/up.sh
installs, keeps somework-frontend and somework-backend), else
<release>-somework. Two releases in one namespace never collide. At most 50
characters, so "-loadgen" still fits in 63.
*/}}
{{- define "somework.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "somework.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Common labels; call with (dict "root" $ "component" "frontend"). */}}
{{- define "somework.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "somework.selectorLabels" . }}
app.kubernetes.io/version: {{ include "somework.tag" .root | quote }}
app.kubernetes.io/part-of: somework
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/*
Also the pod templates' only labels: nothing that changes with the chart's
version, so a chart upgrade alone restarts no pod.
*/}}
{{- define "somework.selectorLabels" -}}
app.kubernetes.io/name: {{ include "somework.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{- define "somework.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* The Secret with SENTRY_DSN: the user's, or the one this chart creates. */}}
{{- define "somework.sentrySecretName" -}}
{{- .Values.sentry.existingSecret | default (printf "%s-sentry" (include "somework.fullname" .)) -}}
{{- end -}}

{{- define "somework.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "somework.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}
