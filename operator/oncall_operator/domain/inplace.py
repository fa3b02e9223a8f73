"""In-place resize of an OOM-killed pod (Kubernetes 1.35), where a runbook opts in (``strategy: InPlace``).

The kill is answered on the pod itself, through its ``resize`` subresource: the one write to a
Pod the operator ever makes, and only then. The container's memory goes to what the template
raise would give it; the pod's QoS class cannot change (the API server refuses such a resize);
the container's ``resizePolicy`` is the kubelet's to apply (``RestartContainer`` restarts it,
``NotRequired`` does not). The template change is recorded as a recommendation. Like VPA's
``InPlaceOrRecreate``, the template is patched instead when the resize is refused (the API
server's dry-run or the call) or when the kubelet reports ``PodResizePending`` ``Infeasible``.

Pure: the pod's facts, the planned template change and the Incident's actions in, changes out.
What an in-place resize did is read back from ``status.actions`` (reason ``ResizedInPlace``,
occurrence = the kill's key, which begins with the pod's UID).
"""

import collections.abc as cabc
from typing import Any

from oncall_operator.api import incident, runbook
from oncall_operator.domain import changes, memory_limits, oom

RESIZED = "ResizedInPlace"
INFEASIBLE = "ResizeInfeasible"


def _ops_values(change: changes.Change, container_path: str) -> tuple[str | None, str | None]:
    """The new limit and request a template change sets on the container at ``container_path``."""
    values: dict[str, Any] = {
        op["path"]: op["value"] for op in change.ops if op["op"] == "replace" and op["path"].startswith(container_path)
    }
    return values.get(f"{container_path}/resources/limits/memory"), values.get(
        f"{container_path}/resources/requests/memory"
    )


def resize(
    pod: oom.PodFacts, kill: oom.Kill, template_change: changes.Change, container_path: str
) -> changes.Change | None:
    """The resize of ``pod`` to what ``template_change`` gives the container; None when not possible.

    Not for init containers (only sidecars resize, and an OOM of one is a template matter), nor
    for a container without a limit on the pod, nor when the pod no longer has the container.
    """
    if kill.init or kill.limit is None or kill.container not in pod.containers:
        return None
    limit, request = _ops_values(template_change, container_path)
    if limit is None:
        return None
    path = f"/spec/containers/{pod.containers.index(kill.container)}"
    requests = (kill.request, request) if request is not None and kill.request is not None else None
    ops, before, after = memory_limits.raise_ops(path, kill.container, (kill.limit, limit), requests)
    summary = f"resize container {kill.container} of pod {pod.name} in place: {before} -> {after}"
    return changes.Change(
        "Pod",
        pod.namespace,
        pod.name,
        tuple(ops),
        before,
        after,
        summary,
        None,
        template_change.action,
        runbook.ActionType.RAISE_MEMORY_LIMIT,
        kill.container,
    )


def resized(status: incident.IncidentStatus | None, pod_uid: str) -> incident.ActionRecord | None:
    """The last in-place resize applied to this pod, if its last recorded action is one."""
    mine = [a for a in (status.actions if status else ()) if a.occurrence.startswith(f"{pod_uid}/")]
    last = mine[-1] if mine else None
    if last and last.state == incident.ActionState.APPLIED and last.reason.startswith(f"{RESIZED}:"):
        return last
    return None


def resized_limit(record: incident.ActionRecord) -> str:
    """The limit an in-place resize gave (from its ``after``: ``limits.memory=X ...``)."""
    first = record.after.split()[0] if record.after else ""
    return first.removeprefix("limits.memory=")


def pending(status: incident.IncidentStatus | None, pod: oom.PodFacts) -> cabc.Sequence[oom.Kill]:
    """The kill whose in-place resize the kubelet reports Infeasible and that awaits its fallback."""
    if not pod.resize_infeasible:
        return ()
    last = resized(status, pod.uid)
    if last is None:
        return ()
    return tuple(k for k in pod.kills if k.key == last.occurrence)
