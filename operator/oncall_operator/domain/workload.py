"""The workload an OOM-killed pod belongs to, as far as remediation needs to know it.

Read from the Deployment, StatefulSet, DaemonSet or CronJob object as the API server returns it
(a plain dict; a CronJob's pod template is its job template's, so its next run gets the change):
its pod template's containers and their memory, whether it is paused, opted out or tracked by
a GitOps tool, whether its rollout is complete (for resolving an Incident), and the pod a
changed template would create, which the executor sends as a server-side dry-run because a
LimitRange, a ResourceQuota or a pod admission webhook judges Pods, not Deployments: the
dry-run of the Deployment patch alone passes where the new pods would be refused.
"""

import collections.abc as cabc
import copy
import dataclasses
from fractions import Fraction
from typing import Any

from oncall_operator.domain import quantity

SUPPORTED = ("Deployment", "StatefulSet", "DaemonSet", "CronJob")
"""Owners with a pod template the remediation patches (a CronJob's is its job template's)."""
TEMPLATE_PATHS = {"CronJob": "/spec/jobTemplate/spec/template"}
"""Where the pod template is, as a JSON pointer, when it is not ``/spec/template``."""
ON_DELETE = "OnDelete"
OPT_OUT = "oncall.dev/remediation"
OPT_OUT_VALUE = "disabled"
MARKER = "oncall.dev/remediated-kill"
"""Workload annotation written in the same patch as the change: the key of the kill it answers.

If the operator dies between the patch and the Incident write, the restarted operator finds
the kill unrecorded in the Incident but named here, and records it instead of acting twice.
"""
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
GITOPS_LABELS = {
    "argocd.argoproj.io/instance": "Argo CD",
    "kustomize.toolkit.fluxcd.io/name": "Flux (Kustomization)",
    "helm.toolkit.fluxcd.io/name": "Flux (HelmRelease)",
}
GITOPS_ANNOTATIONS = {"argocd.argoproj.io/tracking-id": "Argo CD"}


@dataclasses.dataclass(frozen=True)
class Container:
    name: str
    index: int
    init: bool
    limit: str | None
    request: str | None
    template_path: str = "/spec/template"
    has_resources: tuple[bool, bool] = (True, True)
    """Whether the container has ``resources``, and ``resources.limits``, in the template."""

    @property
    def path(self) -> str:
        """JSON pointer to this container in the workload."""
        return f"{self.template_path}/spec/{'initContainers' if self.init else 'containers'}/{self.index}"


@dataclasses.dataclass(frozen=True)
class Workload:
    kind: str
    api_version: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: cabc.Mapping[str, str]
    annotations: cabc.Mapping[str, str] | None
    template_annotations: cabc.Mapping[str, str] | None
    paused: bool
    containers: tuple[Container, ...]
    template: cabc.Mapping[str, Any]
    claim_templates: tuple[str, ...] = ()
    strategy: str = ""
    """The update strategy's type (``OnDelete``: a changed template reaches no pod until it is deleted)."""

    @property
    def template_path(self) -> str:
        return TEMPLATE_PATHS.get(self.kind, "/spec/template")

    def container(self, name: str, init: bool) -> Container | None:
        return next((c for c in self.containers if c.name == name and c.init == init), None)

    @property
    def marker(self) -> str:
        return (self.annotations or {}).get(MARKER, "")

    @property
    def restarted_at(self) -> str:
        return (self.template_annotations or {}).get(RESTARTED_AT, "")


def read(obj: cabc.Mapping[str, Any]) -> Workload:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind = obj.get("kind", "")
    path = TEMPLATE_PATHS.get(kind, "/spec/template")
    template = spec.get("template") or {}
    if kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    pod_spec = template.get("spec") or {}
    containers = []
    for field, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(pod_spec.get(field) or ()):
            res = c.get("resources") or {}
            limit = (res.get("limits") or {}).get("memory")
            request = (res.get("requests") or {}).get("memory")
            has = ("resources" in c, "limits" in res)
            containers.append(Container(c.get("name", ""), i, init, limit, request, path, has))
    claims = tuple(c.get("metadata", {}).get("name", "") for c in spec.get("volumeClaimTemplates") or ())
    strategy = (spec.get("updateStrategy") or spec.get("strategy") or {}).get("type", "")
    return Workload(
        kind=kind,
        api_version=obj.get("apiVersion", ""),
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=None if meta.get("annotations") is None else dict(meta["annotations"]),
        template_annotations=None
        if (template.get("metadata") or {}).get("annotations") is None
        else dict(template["metadata"]["annotations"]),
        paused=bool(spec.get("paused")),
        containers=tuple(containers),
        template=template,
        claim_templates=claims,
        strategy=strategy,
    )


def gitops_tracker(labels: cabc.Mapping[str, str], annotations: cabc.Mapping[str, str] | None) -> str | None:
    """Who keeps this object in sync with git, by their tracking label or annotation, if anyone."""
    for key, tool in GITOPS_LABELS.items():
        if key in labels:
            return f"{tool} ({key}={labels[key]})"
    for key, tool in GITOPS_ANNOTATIONS.items():
        if key in (annotations or {}):
            return f"{tool} ({key})"
    return None


def opted_out(
    namespace_annotations: cabc.Mapping[str, str], annotations: cabc.Mapping[str, str] | None, where: str
) -> str | None:
    """Which object says ``oncall.dev/remediation: disabled``, if one does."""
    if (annotations or {}).get(OPT_OUT, "").lower() == OPT_OUT_VALUE:
        return where
    if namespace_annotations.get(OPT_OUT, "").lower() == OPT_OUT_VALUE:
        return "the namespace"
    return None


def vpa_manager(vpas: cabc.Iterable[cabc.Mapping[str, Any]], kind: str, name: str) -> str | None:
    """The VerticalPodAutoscaler that sets this workload's resources (any ``updateMode`` but ``Off``), if one does."""
    for vpa in vpas:
        spec = vpa.get("spec") or {}
        ref = spec.get("targetRef") or {}
        mode = (spec.get("updatePolicy") or {}).get("updateMode") or "Auto"
        if ref.get("kind") == kind and ref.get("name") == name and mode != "Off":
            return f"VerticalPodAutoscaler {(vpa.get('metadata') or {}).get('name', '?')} (updateMode {mode})"
    return None


def qos_class(pod_spec: cabc.Mapping[str, Any]) -> str:
    """The QoS class the kubelet would give a pod of this spec (requests default to limits)."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for c in [*(pod_spec.get("initContainers") or ()), *(pod_spec.get("containers") or ())]:
        res = c.get("resources") or {}
        lim = {k: quantity.parse(v) for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        req = {k: quantity.parse(v) for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        req = {**lim, **req}
        for k, v in req.items():
            if v:
                requests[k] = requests.get(k, Fraction(0)) + v
        for k, v in lim.items():
            if v:
                limits[k] = limits.get(k, Fraction(0)) + v
        if {k for k, v in lim.items() if v} != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests == limits:
        return "Guaranteed"
    return "Burstable"


def rollout_complete(obj: cabc.Mapping[str, Any]) -> bool:
    """Whether every replica runs the current template and is available (``kubectl rollout status``)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if obj.get("kind") == "CronJob":
        return True  # its next run makes its pods from the changed template: nothing rolls out (no observedGeneration)
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    if obj.get("kind") == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        return bool(
            status.get("updatedNumberScheduled", 0) == desired
            and status.get("numberAvailable", 0) == desired
            and status.get("currentNumberScheduled", 0) == desired
        )
    want = spec.get("replicas", 1)
    if obj.get("kind") == "StatefulSet":
        same_revision = (
            status.get("updateRevision") == status.get("currentRevision") or status.get("updatedReplicas", 0) == want
        )
        return bool(same_revision) and status.get("readyReplicas", 0) == want and status.get("replicas", 0) == want
    return bool(
        status.get("updatedReplicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want
    )


def probe_pod(w: Workload, template: cabc.Mapping[str, Any]) -> dict[str, Any]:
    """The Pod the controller would create from ``template``, for a server-side dry-run create."""
    meta = template.get("metadata") or {}
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    if w.claim_templates:  # the StatefulSet controller adds a volume per claim template
        volumes = list(spec.get("volumes") or [])
        names = {v.get("name") for v in volumes}
        for claim in w.claim_templates:
            if claim not in names:
                volumes.append({"name": claim, "persistentVolumeClaim": {"claimName": f"{claim}-{w.name}-0"}})
        spec["volumes"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{w.name[:40]}-oncall-dryrun-",
            "namespace": w.namespace,
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": spec,
    }
