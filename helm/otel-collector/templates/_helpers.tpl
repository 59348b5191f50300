{{- define "otel-collector.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of every object, as the upstream collector chart makes it: fullnameOverride,
else the release name when it holds the chart's name (so the release
"otel-collector", which scripts/up.sh installs, keeps the Service name
otel-collector), else <release>-otel-collector. Two releases in one namespace
never collide.
*/}}
{{- define "otel-collector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "otel-collector.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* On every object but the pod template, which carries the selector labels only. */}}
{{- define "otel-collector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "otel-collector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: collector
app.kubernetes.io/part-of: somework
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The pod template's labels: nothing that changes with the chart's version, so
a chart upgrade alone restarts no pod.
*/}}
{{- define "otel-collector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-collector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "otel-collector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "otel-collector.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
The pipeline that runs: .Values.pipeline, or when empty, the one the given
credentials select (see values.yaml). The only place that picks one.
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
The pipeline's files, in the order the collector merges them (one --config
each): pipelines/base.yaml, the overlay of every folder on the way to the
pipeline's own file, then that file. pipeline "sentry" is base.yaml and
sentry.yaml; "tail-sampling" is base.yaml, sentry.yaml and
sentry/tail-sampling.yaml. Space-separated paths in the chart.
*/}}
{{- define "otel-collector.pipelineFiles" -}}
{{- $pipeline := include "otel-collector.pipeline" . -}}
{{- $own := "" -}}
{{- range $path, $_ := .Files.Glob "pipelines/**.yaml" -}}
{{- if eq (base $path) (printf "%s.yaml" $pipeline) -}}
{{- $own = $path -}}
{{- end -}}
{{- end -}}
{{- if not $own -}}
{{- fail (printf "pipeline %s has no file pipelines/%s.yaml (or in a folder below pipelines/)" $pipeline $pipeline) -}}
{{- end -}}
{{- $files := list "pipelines/base.yaml" -}}
{{- $folder := "pipelines" -}}
{{- range $step := dir $own | trimPrefix "pipelines" | splitList "/" | compact -}}
{{- $folder = printf "%s/%s" $folder $step -}}
{{- $files = append $files (printf "%s.yaml" $folder) -}}
{{- end -}}
{{- append $files $own | join " " -}}
{{- end -}}

{{/*
The keys of the ConfigMap, in --config order: each pipeline file under its
own name, then tls.yaml (tls.existingSecret) and config.yaml (the user's
`config`), so that the user's settings win.
*/}}
{{- define "otel-collector.configKeys" -}}
{{- $keys := list -}}
{{- range $path := splitList " " (include "otel-collector.pipelineFiles" .) -}}
{{- $keys = append $keys (base $path) -}}
{{- end -}}
{{- if .Values.tls.existingSecret -}}
{{- $keys = append $keys "tls.yaml" -}}
{{- end -}}
{{- if .Values.config -}}
{{- $keys = append $keys "config.yaml" -}}
{{- end -}}
{{- join " " $keys -}}
{{- end -}}

{{/*
The ConfigMap's data. Its checksum rolls the pods when it changes, and only
then: the chart's version is not in it.
*/}}
{{- define "otel-collector.configData" -}}
{{- range $path := splitList " " (include "otel-collector.pipelineFiles" .) }}
{{ base $path }}: |
  {{- $.Files.Get $path | trimSuffix "\n" | nindent 2 }}
{{- end }}
{{- if .Values.tls.existingSecret }}
tls.yaml: |
  # The OTLP receivers serve TLS from the mounted Secret.
  receivers:
    otlp:
      protocols:
        {{- range $protocol := list "grpc" "http" }}
        {{ $protocol }}:
          tls:
            cert_file: /etc/otel-collector/tls/tls.crt
            key_file: /etc/otel-collector/tls/tls.key
            {{- if $.Values.tls.requireClientCertificate }}
            client_ca_file: /etc/otel-collector/tls/ca.crt
            {{- end }}
        {{- end }}
{{- end }}
{{- with .Values.config }}
config.yaml: |
  # The chart's `config` value.
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The ${env:NAME} references of the pipeline's files (comments left out):
those without a default ("${env:NAME}") are credentials, read from the Secret
under the same name; those with one ("${env:NAME:-default}") are settings,
set from a value when the chart has one for them (otel-collector.settings).
*/}}
{{- define "otel-collector.envReferences" -}}
{{- $text := "" -}}
{{- range $path := splitList " " (include "otel-collector.pipelineFiles" .) -}}
{{- $text = print $text (regexReplaceAll "(?m)^\\s*#.*$" ($.Files.Get $path) "") -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/* The Secret keys the pipeline reads, sorted, space-separated. */}}
{{- define "otel-collector.secretKeys" -}}
{{- $keys := list -}}
{{- range $ref := regexFindAll "\\$\\{env:[A-Za-z_][A-Za-z0-9_]*\\}" (include "otel-collector.envReferences" .) -1 -}}
{{- $keys = append $keys (trimSuffix "}" (trimPrefix "${env:" $ref)) -}}
{{- end -}}
{{- $keys | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/* The settings (variables with a default) the pipeline reads, sorted. */}}
{{- define "otel-collector.settingNames" -}}
{{- $names := list -}}
{{- range $ref := regexFindAll "\\$\\{env:[A-Za-z_][A-Za-z0-9_]*:-" (include "otel-collector.envReferences" .) -1 -}}
{{- $names = append $names (trimSuffix ":-" (trimPrefix "${env:" $ref)) -}}
{{- end -}}
{{- $names | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/* The values the chart has for settings, by variable name (JSON). */}}
{{- define "otel-collector.settings" -}}
{{- toJson (dict
  "SENTRY_URL" .Values.sentry.url
  "JAEGER_OTLP_ENDPOINT" .Values.jaeger.endpoint
  "VICTORIALOGS_OTLP_ENDPOINT" .Values.victoriaLogs.endpoint
  "TAIL_SAMPLING_LATENCY_MS" (toString .Values.tailSampling.latencyMs)
  "TAIL_SAMPLING_PERCENT" (toString .Values.tailSampling.percent)) -}}
{{- end -}}

{{/* Name of the Secret with the credentials: the user's or the chart's. */}}
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
