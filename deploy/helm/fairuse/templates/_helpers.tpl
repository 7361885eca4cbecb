{{/* Names, labels and the environment shared by the fairuse components. */}}

{{- define "fairuse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fairuse.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "worker") */}}
{{- define "fairuse.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fairuse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "fairuse.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "fairuse.fullname" .)) -}}
{{- end -}}

{{- define "fairuse.clickhouseService" -}}
clickhouse-{{ include "fairuse.fullname" . }}
{{- end -}}

{{/* FAIRUSE_* variables every component reads (docs/operations.md, "Kubernetes"). */}}
{{- define "fairuse.env" -}}
- name: FAIRUSE_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: FAIRUSE_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if .Values.kafka.saslMechanism }}
- name: FAIRUSE_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: FAIRUSE_KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.saslUsername | quote }}
- name: FAIRUSE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "fairuse.secretName" . }}, key: saslPassword}
{{- end }}
- name: FAIRUSE_KAFKA_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: FAIRUSE_KAFKA_EVENTS_PARTITIONS
  value: {{ .Values.kafka.eventsPartitions | quote }}
- name: FAIRUSE_KAFKA_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: FAIRUSE_METRICS_LAG_INTERVAL_S
  value: {{ .Values.metrics.lagIntervalSeconds | quote }}
{{- if .Values.policy.file }}
- name: FAIRUSE_POLICY_FILE
  value: {{ .Values.policy.file | quote }}
{{- end }}
{{- if .Values.clickhouse.operator }}
- name: FAIRUSE_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "fairuse.secretName" . }}, key: clickhousePassword}
- name: FAIRUSE_WAREHOUSE_DSN
  value: {{ printf "http://%s:$(FAIRUSE_CLICKHOUSE_PASSWORD)@%s:8123/%s" .Values.clickhouse.user (include "fairuse.clickhouseService" .) .Values.clickhouse.database | quote }}
{{- else }}
- name: FAIRUSE_WAREHOUSE_DSN
  valueFrom:
    secretKeyRef: {name: {{ include "fairuse.secretName" . }}, key: warehouseDsn}
{{- end }}
{{- end -}}

{{/* HTTP probes on a component's port: /healthz (liveness), /readyz (readiness). */}}
{{- define "fairuse.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{- define "fairuse.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  fsGroup: 10001
{{- end -}}

{{- define "fairuse.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
