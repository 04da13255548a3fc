{{/*
Names, labels, images and the operator's RBAC rules, shared by the templates.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "gaussian-avatar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: fullnameOverride, else <release>-<name> (just <release> when it already contains the name,
so `helm install gaussian-avatar` gives gaussian-avatar-operator, not gaussian-avatar-gaussian-avatar-operator).
Kept to 40 characters so that "-operator" and the other suffixes stay within 63.
*/}}
{{- define "gaussian-avatar.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := include "gaussian-avatar.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's resource name (Deployment, Service, roles). */}}
{{- define "gaussian-avatar.operatorName" -}}
{{- printf "%s-operator" (include "gaussian-avatar.fullname" .) }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "gaussian-avatar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on everything the chart renders. */}}
{{- define "gaussian-avatar.labels" -}}
helm.sh/chart: {{ include "gaussian-avatar.chart" . }}
app.kubernetes.io/name: {{ include "gaussian-avatar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: gaussian-avatar
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's selector labels (stable: a Deployment's selector is immutable). */}}
{{- define "gaussian-avatar.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "gaussian-avatar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of the operator's objects: the common ones plus component=operator. */}}
{{- define "gaussian-avatar.operatorLabels" -}}
{{ include "gaussian-avatar.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "gaussian-avatar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gaussian-avatar.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository@digest, else repository:tag (tag "" = appVersion).
Call with (dict "image" .Values.x.image "key" "x.image" "root" $).
*/}}
{{- define "gaussian-avatar.image" -}}
{{- $image := .image }}
{{- if not $image.repository }}
{{- fail (printf "%s.repository must not be empty (e.g. ghcr.io/gaussian-avatar/operator)" .key) }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- $tag := default .root.Chart.AppVersion $image.tag }}
{{- if not $tag }}
{{- fail (printf "%s.tag is empty and the chart has no appVersion to fall back on" .key) }}
{{- end }}
{{- printf "%s:%s" $image.repository $tag }}
{{- end }}
{{- end }}

{{/* The peering object's name. */}}
{{- define "gaussian-avatar.peeringName" -}}
{{- default (include "gaussian-avatar.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* The namespace of the examples. */}}
{{- define "gaussian-avatar.examplesNamespace" -}}
{{- default .Release.Namespace .Values.examples.namespace }}
{{- end }}

{{/*
The operator's RBAC, exactly what its code does (tests/chart/test_rbac.py runs the operator against an API emulator,
records every request and compares it with these rules both ways). Namespaced resources: in the ClusterRole when the
operator watches every namespace, in a Role per namespace otherwise.
*/}}
{{- define "gaussian-avatar.namespacedRules" -}}
# Our resources: kopf lists and watches them and keeps its progress annotations on them (merge patch); each
# reconcile re-reads the resource and the AvatarModelCache it names.
- apiGroups: [gaussianavatar.io]
  resources: [avatardeployments, avatarmodelcaches]
  verbs: [get, list, watch, patch]
- apiGroups: [gaussianavatar.io]
  resources: [avatardeployments/status, avatarmodelcaches/status]
  verbs: [patch]
# kopf posts Events on our resources (Ready transitions, warnings).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The children: read, create, patched back when they drift, listed and deleted when no longer wanted (pruning).
- apiGroups: [""]
  resources: [configmaps, secrets, services]
  verbs: [get, list, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, create, patch, delete]
- apiGroups: [cert-manager.io]
  resources: [certificates]
  verbs: [get, list, create, patch, delete]
# Written once (a claim's spec is immutable) and Jobs re-created (a pod template is immutable): never patched.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, create, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, delete]
# The autoscaler of spec.autoscaling (a KEDA ScaledObject or an HPA), a child like the others.
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, create, patch, delete]
# status.activeSessions: the ready runtime pods' /metrics, read through the API server's pod proxy; each pod's
# count is written back as its scale-down annotations (pod-deletion-cost, safe-to-evict, do-not-disrupt).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, patch]
- apiGroups: [""]
  resources: [pods/proxy]
  verbs: [get]
{{- end }}

{{/* kopf's own cluster-scoped reads, in every mode. */}}
{{- define "gaussian-avatar.clusterRules" -}}
# kopf follows the CRDs (a new version of ours is picked up without a restart).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}

{{/* Leader election: kopf lists and watches the peering objects and patches its keep-alive into ours. */}}
{{- define "gaussian-avatar.peeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  resourceNames: [{{ .name | quote }}]
  verbs: [patch]
{{- end }}
