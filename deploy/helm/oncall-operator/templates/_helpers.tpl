{{/* The release's full name: <release>-oncall-operator, or the release name if it has the chart's. */}}
{{- define "oncall-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "oncall-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oncall-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oncall-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "oncall-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "oncall-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: oncall-operator
{{- end -}}

{{- define "oncall-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "oncall-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "oncall-operator.peeringName" -}}
{{- default (include "oncall-operator.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* The watched namespaces (the release namespace first), as a JSON list; [] means the whole cluster. */}}
{{- define "oncall-operator.watchNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- prepend .Values.operator.watchNamespaces .Release.Namespace | uniq | toJson -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* Where notifier Secrets may be read, as a JSON list (default: the release namespace). */}}
{{- define "oncall-operator.secretNamespaces" -}}
{{- default (list .Release.Namespace) .Values.rbac.secretNamespaces | uniq | toJson -}}
{{- end -}}

{{- define "oncall-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
