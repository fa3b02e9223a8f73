{{/* The working set: what the operator does in each namespace it watches (see rbac.yaml). */}}
{{- define "oncall-operator.workingRules" -}}
# the operator's kinds: Kopf lists and watches them (no finalizer: no Kopf timers or change handlers on
# them); patch lets Kopf take off the finalizer that earlier builds put on them
- apiGroups: [oncall.dev]
  resources: [oncallschedules, escalationpolicies, runbooks, maintenancewindows, heartbeats]
  verbs: [list, watch, patch]
# Incidents: opened by the OOM watch and the intake (deterministic names), read before each write
- apiGroups: [oncall.dev]
  resources: [incidents]
  verbs: [get, list, watch, create, patch]
# the Ready condition and status fields
- apiGroups: [oncall.dev]
  resources: [oncallschedules/status, escalationpolicies/status, runbooks/status, maintenancewindows/status]
  verbs: [patch]
# Heartbeats: the intake records each beat, the tick the state (merge patches of the status)
- apiGroups: [oncall.dev]
  resources: [heartbeats/status]
  verbs: [patch]
# Incident status: read-modify-write guarded by resourceVersion (PUT), conditions (merge patch)
- apiGroups: [oncall.dev]
  resources: [incidents/status]
  verbs: [update, patch]
# Pods: watched for OOM kills, never written; `create` only for the server-side dry-run of the
# pod a patched template would make (the API server authorizes a dry-run like the real call)
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create]
# the one Pod write: an in-place resize of an OOM-killed pod's memory, only where a runbook says
# raiseMemoryLimit.strategy: InPlace (the resize subresource changes container resources only)
- apiGroups: [""]
  resources: [pods/resize]
  verbs: [patch]
# the workload a remediation changes (and its dry-run); owners followed from a pod; list and
# watch feed the remediation's cache, so a kill is answered without reading the workload first
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, patch]
# replicasets: an owner followed from a pod (get), a rollback's previous revision (list);
# controllerrevisions: a StatefulSet's previous revision (list)
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [list]
# scale refuses when a HorizontalPodAutoscaler manages the workload (it would fight the change)
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list]
# an OOM raise is only recommended when a VerticalPodAutoscaler manages the workload (it would
# fight the change); a cluster without the VPA answers 404 and the list is empty; watch feeds the
# remediation's cache of them
- apiGroups: [autoscaling.k8s.io]
  resources: [verticalpodautoscalers]
  verbs: [list, watch]
# the OOM remediation of DaemonSets (template patch) and CronJobs (job template patch, for the
# next run); list and watch feed the caches an OOM kill is answered from, a Job is read to find its CronJob
- apiGroups: [apps]
  resources: [daemonsets]
  verbs: [get, list, watch, patch]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get]
# post-incident review reports (owned by their Incident); feature flags (setFeatureFlag)
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
# Events about the objects it acts on (Kopf's and the remediation's)
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
