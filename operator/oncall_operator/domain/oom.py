"""OOM kills as the kubelet reports them in pod status, each with an identity to count it once.

A container's OOM kill shows up in ``state.terminated`` (while it is down, or for good with
``restartPolicy: Never``) and then in ``lastState.terminated`` once it runs again or waits in
back-off; VPA reads both, Robusta only the first and misses kills. One kill is therefore seen in
many pod updates, and across them its ``restartCount`` is not stable (N while terminated or in
back-off, N+1 once restarted), so the dedup key is pod UID + container + ``finishedAt``
(falling back to the container ID, then the restart count, when a status lacks the time). The
key is what the Incident remembers in ``status.guardrails.seen``.

The limit and request recorded with each kill are the pod's own (what the container ran with),
which is what tells a kill under the current template from one under a template already raised.
"""

import collections.abc as cabc
import dataclasses
from typing import Any

OOM_REASON = "OOMKilled"
_STATUS_LISTS = (("containerStatuses", False), ("initContainerStatuses", True))


@dataclasses.dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True)
class Kill:
    """One OOM kill of one container run."""

    key: str
    container: str
    init: bool
    restart_count: int
    finished_at: str
    exit_code: int | None
    limit: str | None
    request: str | None
    ran_with: str | None = None
    """The memory limit the kubelet reports the container had (``status.resources``; with an in-place
    resize pending or infeasible it is not the spec's ``limit``), if it reports one."""


@dataclasses.dataclass(frozen=True)
class Resize:
    """Where the kubelet stands with an in-place resize of the pod (the pod's conditions and container statuses)."""

    pending: str = ""
    """``PodResizePending``'s reason: ``Deferred`` (may fit later) or ``Infeasible`` (never on this node)."""
    in_progress: str = ""
    """``PodResizeInProgress``: ``True`` while the kubelet applies it, or its reason (``Error``)."""
    message: str = ""
    """The kubelet's words for the condition that holds."""
    limits: cabc.Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Each running container's memory limit as the kubelet reports it (``status.resources.limits``)."""


@dataclasses.dataclass(frozen=True)
class PodFacts:
    name: str
    namespace: str
    uid: str
    created: str
    labels: cabc.Mapping[str, str]
    annotations: cabc.Mapping[str, str]
    owner: OwnerRef | None
    qos_class: str
    kills: tuple[Kill, ...]
    containers: tuple[str, ...] = ()
    """The names of the pod's (regular) containers in order: where a resize patch points."""
    resize: Resize = Resize()
    """Where the kubelet stands with an in-place resize of this pod."""
    restart_on_resize: frozenset[str] = frozenset()
    """Containers whose memory ``resizePolicy`` is ``RestartContainer``: a resize restarts them."""
    resources: cabc.Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The pod's containers' resources (``{"initContainers": [...], "containers": [...]}``): its QoS class."""


def has_oom(status: cabc.Mapping[str, Any] | None) -> bool:
    """Cheap test for the watch filter: does any container status mention an OOM kill?"""
    for field, _ in _STATUS_LISTS:
        for cs in (status or {}).get(field) or ():
            for which in ("state", "lastState"):
                if ((cs.get(which) or {}).get("terminated") or {}).get("reason") == OOM_REASON:
                    return True
    return False


def kill_key(pod_uid: str, container: str, finished_at: str, container_id: str, restart_count: int) -> str:
    identity = finished_at or container_id or f"restart-{restart_count}"
    return f"{pod_uid}/{container}/{identity}"


def _memory(spec: cabc.Mapping[str, Any], field: str, container: str) -> tuple[str | None, str | None]:
    for c in spec.get(field) or ():
        if c.get("name") == container:
            resources = c.get("resources") or {}
            return (resources.get("limits") or {}).get("memory"), (resources.get("requests") or {}).get("memory")
    return None, None


def _controller(meta: cabc.Mapping[str, Any]) -> OwnerRef | None:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller"):
            return OwnerRef(ref.get("apiVersion", ""), ref["kind"], ref["name"], ref.get("uid", ""))
    return None


def read_pod(pod: cabc.Mapping[str, Any]) -> PodFacts:
    """The facts of a pod the remediation needs, with every OOM kill its status shows."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    uid = meta.get("uid", "")
    kills: dict[str, Kill] = {}
    for field, init in _STATUS_LISTS:
        spec_field = "initContainers" if init else "containers"
        for cs in status.get(field) or ():
            name, restarts = cs.get("name", ""), int(cs.get("restartCount") or 0)
            for which in ("state", "lastState"):
                term = (cs.get(which) or {}).get("terminated") or {}
                if term.get("reason") != OOM_REASON:
                    continue
                finished = term.get("finishedAt") or ""
                key = kill_key(uid, name, finished, term.get("containerID") or "", restarts)
                limit, request = _memory(spec, spec_field, name)
                ran_with = ((cs.get("resources") or {}).get("limits") or {}).get("memory")
                exit_code = term.get("exitCode")
                kills.setdefault(
                    key,
                    Kill(
                        key,
                        name,
                        init,
                        restarts,
                        finished,
                        None if exit_code is None else int(exit_code),
                        limit,
                        request,
                        ran_with,
                    ),
                )
    return PodFacts(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=uid,
        created=meta.get("creationTimestamp") or "",
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        owner=_controller(meta),
        qos_class=status.get("qosClass", ""),
        kills=tuple(sorted(kills.values(), key=lambda k: (k.finished_at, k.restart_count, k.key))),
        containers=tuple(c.get("name", "") for c in spec.get("containers") or ()),
        resize=_resize(status),
        restart_on_resize=frozenset(
            c.get("name", "")
            for c in spec.get("containers") or ()
            for p in c.get("resizePolicy") or ()
            if p.get("resourceName") == "memory" and p.get("restartPolicy") == "RestartContainer"
        ),
        resources={
            field: [{"resources": c.get("resources") or {}} for c in spec.get(field) or ()]
            for field in ("initContainers", "containers")
        },
    )


def _resize(status: cabc.Mapping[str, Any]) -> Resize:
    pending = in_progress = message = ""
    for cond in status.get("conditions") or ():
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "PodResizePending":
            pending, message = str(cond.get("reason") or "Deferred"), str(cond.get("message") or "")
        elif cond.get("type") == "PodResizeInProgress":
            in_progress = str(cond.get("reason") or "True")
            message = message or str(cond.get("message") or "")
    limits = {  # of running containers only: for any other the kubelet reports what it allocated
        str(cs.get("name", "")): str(((cs.get("resources") or {}).get("limits") or {}).get("memory"))
        for cs in status.get("containerStatuses") or ()
        if ((cs.get("resources") or {}).get("limits") or {}).get("memory") and "running" in (cs.get("state") or {})
    }
    return Resize(pending, in_progress, message, limits)
