{{/* Chart name, overridable. It is also the `app.kubernetes.io/name` label, which the
ServiceMonitor uses as Prometheus' job label (jobLabel): the rules select
job="tencent-live-exporter", so keep nameOverride empty unless you re-render the rules. */}}
{{- define "tencent-live-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (release name + chart name unless one contains the other). */}}
{{- define "tencent-live-exporter.fullname" -}}
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

{{- define "tencent-live-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tencent-live-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tencent-live-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tencent-live-exporter.labels" -}}
helm.sh/chart: {{ include "tencent-live-exporter.chart" . }}
{{ include "tencent-live-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tencent-live-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tencent-live-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* ConfigMap holding config.yml: the user's, or the one this chart renders. */}}
{{- define "tencent-live-exporter.configMapName" -}}
{{- default (printf "%s-config" (include "tencent-live-exporter.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* Secret holding web-config.yml, when a web config is used. */}}
{{- define "tencent-live-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "tencent-live-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{- define "tencent-live-exporter.webConfigEnabled" -}}
{{- if or .Values.webConfig.existingSecret .Values.webConfig.content }}true{{ end }}
{{- end }}

{{/* One probe: HTTP GET of `path` (scheme per probes.scheme) or a TCP connect. */}}
{{- define "tencent-live-exporter.probe" -}}
{{- $probes := .root.Values.probes -}}
{{- if eq $probes.type "tcp" }}
tcpSocket:
  port: http-metrics
{{- else }}
httpGet:
  path: {{ .path }}
  port: http-metrics
  scheme: {{ $probes.scheme }}
{{- end }}
{{- toYaml .settings | nindent 0 }}
{{- end }}
