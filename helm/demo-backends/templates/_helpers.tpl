{{/* Common labels; call with (dict "root" $ "component" "jaeger"). */}}
{{- define "demo-backends.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "demo-backends.selectorLabels" . }}
app.kubernetes.io/version: {{ .version | quote }}
app.kubernetes.io/part-of: somework
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

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
{{- .Values.bugsink.existingSecret | default "bugsink" -}}
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
