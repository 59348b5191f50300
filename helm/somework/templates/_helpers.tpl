{{- define "somework.fullname" -}}
{{- .Values.fullnameOverride | default .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels; call with (dict "root" $ "component" "frontend"). */}}
{{- define "somework.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "somework.selectorLabels" . }}
app.kubernetes.io/version: {{ include "somework.tag" .root | quote }}
app.kubernetes.io/part-of: somework
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{- define "somework.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
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
