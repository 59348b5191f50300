{{/* Name of every object; the Service must stay "otel-collector". */}}
{{- define "otel-collector.fullname" -}}
{{- .Values.fullnameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "otel-collector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "otel-collector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: collector
app.kubernetes.io/part-of: somework
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "otel-collector.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The pipeline that runs: .Values.pipeline, or when empty, the one the given
credentials select (see values.yaml).
*/}}
{{- define "otel-collector.pipeline" -}}
{{- $s := .Values.sentry -}}
{{- if .Values.pipeline -}}
{{- .Values.pipeline -}}
{{- else if or $s.existingSecret $s.authToken -}}
sentry
{{- else if $s.publicKey -}}
sentry-otlp
{{- else -}}
zero-account
{{- end -}}
{{- end -}}

{{/*
The file in files/ for the pipeline. All but zero-account.yaml are verbatim
copies of collector-config/ (scripts/render-k8s.sh copies them).
*/}}
{{- define "otel-collector.configFile" -}}
{{- $files := dict "zero-account" "zero-account.yaml" "sentry" "otel-collector.yaml" "tail-sampling" "tail-sampling.yaml" "sentry-otlp" "sentry-otlp.yaml" -}}
{{- get $files (include "otel-collector.pipeline" .) -}}
{{- end -}}

{{/* The Secret keys each pipeline reads, as environment variables of the same name. */}}
{{- define "otel-collector.secretKeys" -}}
{{- $pipeline := include "otel-collector.pipeline" . -}}
{{- if eq $pipeline "sentry-otlp" -}}
SENTRY_OTLP_TRACES_URL SENTRY_OTLP_LOGS_URL SENTRY_PUBLIC_KEY
{{- else if ne $pipeline "zero-account" -}}
SENTRY_AUTH_TOKEN SENTRY_ORG SENTRY_PROJECT
{{- end -}}
{{- end -}}

{{/* Name of the Secret with the Sentry credentials: the user's or the chart's. */}}
{{- define "otel-collector.secretName" -}}
{{- .Values.sentry.existingSecret | default (printf "%s-sentry" (include "otel-collector.fullname" .)) -}}
{{- end -}}

{{/*
GOMEMLIMIT from the memory limit: goMemLimitPercent of it, in MiB.
The schema allows only Mi and Gi limits, so this is exact arithmetic.
*/}}
{{- define "otel-collector.goMemLimit" -}}
{{- $limit := toString .Values.resources.limits.memory -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $limit -}}
{{- $mib = mul (trimSuffix "Gi" $limit | atoi) 1024 -}}
{{- else -}}
{{- $mib = trimSuffix "Mi" $limit | atoi -}}
{{- end -}}
{{- printf "%dMiB" (div (mul $mib .Values.goMemLimitPercent) 100) -}}
{{- end -}}
