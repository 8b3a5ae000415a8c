{{/* Chart name, trimmed to a DNS label. */}}
{{- define "graphnap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "graphnap.fullname" -}}
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

{{- define "graphnap.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "graphnap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "graphnap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "graphnap.labels" -}}
helm.sh/chart: {{ include "graphnap.chart" . }}
{{ include "graphnap.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "graphnap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "graphnap.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "graphnap.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding credential files: an existing one, or the one this chart makes. */}}
{{- define "graphnap.secretName" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if .Values.credentials.sets }}
{{- include "graphnap.fullname" . }}
{{- end }}
{{- end }}

{{/* Prometheus scrapes the Service with job=<this>: the alerts and the dashboard select on it. */}}
{{- define "graphnap.job" -}}
{{- include "graphnap.name" . }}
{{- end }}

{{/*
Whether a prometheus-operator object renders: enabled, and either the cluster serves
monitoring.coreos.com/v1 (or `--api-versions` says so) or rendering is forced (GitOps
pipelines that template without cluster access).
Usage: include "graphnap.monitoringApi" (list . .Values.serviceMonitor)
*/}}
{{- define "graphnap.monitoringApi" -}}
{{- $root := index . 0 }}
{{- $values := index . 1 }}
{{- if and $values.enabled (or $values.force ($root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
true
{{- end }}
{{- end }}

{{/* --- leader election (leaderElection.*) --- */}}

{{/* The Lease the replicas campaign on: leaderElection.leaseName, else the fullname. */}}
{{- define "graphnap.leaseName" -}}
{{- default (include "graphnap.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The ConfigMap the state is kept in: leaderElection.configMapName, else <fullname>-state
(the fullname itself is the config's ConfigMap, which graphnap must not be able to write). */}}
{{- define "graphnap.stateConfigMapName" -}}
{{- default (printf "%s-state" (include "graphnap.fullname" .) | trunc 63 | trimSuffix "-") .Values.leaderElection.configMapName }}
{{- end }}

{{/* Where the projected service-account token for the Lease is mounted. */}}
{{- define "graphnap.kubeTokenDir" -}}
/var/run/secrets/graphnap-kube
{{- end }}

{{/* "true" when a credential set uses the oidc source: the projected token is mounted. */}}
{{- define "graphnap.oidc" -}}
{{- range $set, $def := .Values.credentials.identity }}{{ if eq $def.source "oidc" }}true{{ end }}{{ end }}
{{- end }}
