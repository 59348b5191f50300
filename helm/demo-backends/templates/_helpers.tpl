{{/*
Name of a backend's objects; call with (dict "root" $ "component" "jaeger").
The release "demo-backends", which scripts/up.sh installs, keeps the bare
names (jaeger, bugsink, victoria-logs, prometheus) that the other charts'
defaults address, e.g. jaeger.observability.svc.cluster.local:4317. Any other
release prefixes them with its name (fullnameOverride, if set, instead), so
two releases in one namespace never collide.
*/}}
{{- define "demo-backends.fullname" -}}
{{- $root := .root -}}
{{- $prefix := $root.Values.fullnameOverride | default (ternary "" $root.Release.Name (eq $root.Release.Name $root.Chart.Name)) -}}
{{- if $prefix -}}
{{- printf "%s-%s" $prefix .component | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- .component -}}
{{- end -}}
{{- end -}}

{{/* Common labels; call with (dict "root" $ "component" "jaeger"). */}}
{{- define "demo-backends.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "demo-backends.selectorLabels" . }}
app.kubernetes.io/version: {{ .version | quote }}
app.kubernetes.io/part-of: somework
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/*
Also the pod templates' only labels: nothing that changes with the chart's
version, so a chart upgrade alone restarts no pod.
*/}}
{{- define "demo-backends.selectorLabels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "demo-backends.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "demo-backends.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "demo-backends.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "demo-backends.bugsinkSecretName" -}}
{{- .Values.bugsink.existingSecret | default (include "demo-backends.fullname" (dict "root" . "component" "bugsink")) -}}
{{- end -}}

{{/* Settings Bugsink's docker configuration reads, shared by both containers. */}}
{{- define "demo-backends.bugsinkEnv" -}}
- name: SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "demo-backends.bugsinkSecretName" . }}
      key: SECRET_KEY
- name: BASE_URL
  value: {{ .Values.bugsink.baseUrl | quote }}
- name: PORT
  value: "8000"
- name: DATABASE_PATH
  value: /data/db.sqlite3
# A demo inside a cluster: no usage statistics sent to bugsink.com.
- name: PHONEHOME
  value: "false"
{{- end -}}

{{- define "demo-backends.bugsinkMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The ServiceAccount every backend's pod runs as. */}}
{{- define "demo-backends.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "demo-backends.fullname" (dict "root" . "component" "demo-backends")) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}
