"""Workloads on the API server, on the remediation's hot path: owners, reads, dry-runs, the patch.

These calls sit between an OOM kill and the patched workload, so they go through the async
client (:mod:`adapters.apiserver`). Incident *writes* go through :mod:`adapters.incidents`
(optimistic concurrency); objects are plain dicts, as the domain reads them.

Nothing here writes to a Pod but :func:`resize` (a runbook's opt-in ``strategy: InPlace``): the
other Pod call is a server-side *dry-run* create of the pod a changed template would make, which
the API server admits (LimitRange, ResourceQuota, webhooks, PodSecurity) and discards.
"""

import collections
import dataclasses
from typing import Any

from oncall_operator.adapters import apiserver
from oncall_operator.api import GROUP, VERSION
from oncall_operator.domain import oom

FOLLOW = {"ReplicaSet": "Deployment", "Job": "CronJob"}
"""Intermediate owners and the top-level owner they are followed to, when they have one."""
_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs/{name}",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
}
_LISTS = {
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "ControllerRevision": "/apis/apps/v1/namespaces/{ns}/controllerrevisions",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "VerticalPodAutoscaler": "/apis/autoscaling.k8s.io/v1/namespaces/{ns}/verticalpodautoscalers",
}


@dataclasses.dataclass(frozen=True)
class Target:
    kind: str
    api_version: str
    name: str


class OwnerCache:
    """ReplicaSet/Job UID -> its top-level owner. Controller references do not change, so the
    cache saves a read per kill without going stale; it is bounded, and a miss costs one read."""

    def __init__(self, size: int = 4096) -> None:
        self.size, self.items = size, collections.OrderedDict[str, Target]()

    def get(self, uid: str) -> Target | None:
        found = self.items.get(uid)
        if found is not None:
            self.items.move_to_end(uid)
        return found

    def put(self, uid: str, target: Target) -> None:
        self.items[uid] = target
        if len(self.items) > self.size:
            self.items.popitem(last=False)


async def read(api: apiserver.Api, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object as a dict, or None when it does not exist (or is not a kind read here)."""
    if kind not in _PATHS:
        return None
    obj = await api.call("GET", _PATHS[kind].format(ns=namespace, name=name))
    if obj is not None:
        obj.setdefault("kind", kind)
    return obj


async def list_items(api: apiserver.Api, kind: str, namespace: str) -> list[dict[str, Any]]:
    """Every object of ``kind`` (ReplicaSet, ControllerRevision, an autoscaler) in ``namespace``, as dicts.

    A kind whose API the cluster does not serve (no VPA installed) lists as empty."""
    found = await api.call("GET", _LISTS[kind].format(ns=namespace))
    return [dict(item, kind=kind) for item in (found or {}).get("items") or ()]


def guess(pod: oom.PodFacts) -> Target | None:
    """The Deployment a ReplicaSet named ``<deployment>-<pod-template-hash>`` most likely belongs to.

    Lets the owner read run in parallel with the others instead of before them; the executor
    verifies the guess against the ReplicaSet's controller reference in that same batch.
    """
    ref, suffix = pod.owner, pod.labels.get("pod-template-hash", "")
    if ref is None or ref.kind != "ReplicaSet" or not suffix or not ref.name.endswith(f"-{suffix}"):
        return None
    return Target("Deployment", "apps/v1", ref.name[: -len(suffix) - 1])


async def owner(api: apiserver.Api, namespace: str, ref: oom.OwnerRef | None, pod: str, cache: OwnerCache) -> Target:
    """The top-level owner: Pod -> ReplicaSet -> Deployment, Pod -> StatefulSet, Pod -> Job -> CronJob."""
    if ref is None:
        return Target("Pod", "v1", pod)
    if ref.kind not in FOLLOW:
        return Target(ref.kind, ref.api_version, ref.name)
    cached = cache.get(ref.uid)
    if cached is not None:
        return cached
    middle = await read(api, ref.kind, namespace, ref.name)
    if middle is None:
        return Target(ref.kind, ref.api_version, ref.name)
    top = oom.read_pod(middle).owner  # any object's metadata reads the same way
    target = (
        Target(top.kind, top.api_version, top.name)
        if top is not None and top.kind == FOLLOW[ref.kind]
        else Target(ref.kind, ref.api_version, ref.name)
    )
    cache.put(ref.uid, target)
    return target


async def pod(api: apiserver.Api, namespace: str, name: str) -> dict[str, Any] | None:
    """The Pod as a dict (read only: the remediation never writes a Pod), or None when it is gone."""
    return await api.call("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")


async def namespace_annotations(api: apiserver.Api, namespace: str) -> dict[str, str]:
    obj = await api.call("GET", f"/api/v1/namespaces/{namespace}")
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


async def incident(api: apiserver.Api, namespace: str, name: str) -> dict[str, Any] | None:
    return await api.call("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{name}")


async def patch(
    api: apiserver.Api, kind: str, namespace: str, name: str, ops: list[dict[str, Any]], dry_run: bool
) -> dict[str, Any]:
    """Send the JSON patch (as a server-side dry-run when ``dry_run``); the object it made; raises ApiError."""
    params = {"fieldManager": apiserver.AGENT, **({"dryRun": "All"} if dry_run else {})}
    path = _PATHS[kind].format(ns=namespace, name=name)
    found = await api.call("PATCH", path, ops, "application/json-patch+json", **params) or {}
    found.setdefault("kind", kind)
    return found


async def resize(api: apiserver.Api, namespace: str, name: str, ops: list[dict[str, Any]], dry_run: bool) -> None:
    """A JSON patch of the Pod's ``resize`` subresource (its containers' resources only); raises ApiError.

    The one Pod write the operator makes, and only for a runbook with ``strategy: InPlace``."""
    params = {"fieldManager": apiserver.AGENT, **({"dryRun": "All"} if dry_run else {})}
    path = f"/api/v1/namespaces/{namespace}/pods/{name}/resize"
    await api.call("PATCH", path, ops, "application/json-patch+json", **params)


async def dry_run_pod(api: apiserver.Api, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    """Have the API server admit (and discard) the pod a changed template would create; the pod as admitted."""
    found = await api.call(
        "POST", f"/api/v1/namespaces/{namespace}/pods", pod, dryRun="All", fieldManager=apiserver.AGENT
    )
    return found or {}
