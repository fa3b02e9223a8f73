"""In-place resize of an OOM-killed pod (Kubernetes 1.35), where a runbook opts in (``strategy: InPlace``).

The kill is answered on the pod itself, through its ``resize`` subresource: the one write to a
Pod the operator ever makes, and only then. The container's memory goes to what the template
raise would give it. The pod's QoS class never changes (the API server refuses a resize that
would): a Guaranteed pod's request rises with its limit, and a resize that would still change
the class is refused here, with the reason, and the template patched instead. The container's
memory ``resizePolicy`` is recorded: ``NotRequired`` (the default) resizes the running
container, ``RestartContainer`` restarts it to apply the limit. The template change is recorded
as a recommendation.

Then the resize is followed (:func:`follow`) on the pod's status, like VPA's
``InPlaceOrRecreate``: ``PodResizePending`` ``Infeasible`` (the node can never fit it), or a
resize not done within the runbook's ``guardrails.resizeDeadline`` (``Deferred`` for want of
room, ``PodResizeInProgress`` stuck or in ``Error``), falls back to the template patch; a
``Deferred`` resize is noted on the timeline when first seen, and one the kubelet completed (the
container's ``status.resources`` shows the new limit) is recorded as done.

Pure: the pod's facts, the planned template change and the Incident's actions in, changes out.
What an in-place resize did is read back from ``status.actions`` (reason ``ResizedInPlace``,
occurrence = the kill's key, which begins with the pod's UID).
"""

import copy
import dataclasses
import datetime as dt
from typing import Any

from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import changes, memory_limits, oom, quantity, workload

RESIZED = "ResizedInPlace"
INFEASIBLE = "ResizeInfeasible"
DEFERRED = "ResizeDeferred"
"""The fallback after a resize not done by the deadline (Deferred, or stuck in progress)."""
PENDING = "ResizePending"
"""The timeline's note when the kubelet first defers a resize."""
COMPLETED = "ResizeCompleted"
QOS_REFUSED = "would change the pod's QoS class"


def _ops_values(change: changes.Change, container_path: str) -> tuple[str | None, str | None]:
    """The new limit and request a template change sets on the container at ``container_path``."""
    values: dict[str, Any] = {
        op["path"]: op["value"] for op in change.ops if op["op"] == "replace" and op["path"].startswith(container_path)
    }
    return values.get(f"{container_path}/resources/limits/memory"), values.get(
        f"{container_path}/resources/requests/memory"
    )


def _qos_after(pod: oom.PodFacts, index: int, limit: str, request: str | None) -> str:
    spec = copy.deepcopy(dict(pod.resources))
    resources = spec["containers"][index]["resources"]
    resources.setdefault("limits", {})["memory"] = limit
    if request is not None:
        resources.setdefault("requests", {})["memory"] = request
    return workload.qos_class(spec)


def resize(
    pod: oom.PodFacts, kill: oom.Kill, template_change: changes.Change, container_path: str
) -> tuple[changes.Change | None, str]:
    """The resize of ``pod`` to what ``template_change`` gives the container, or (None, why not).

    ``why not`` is empty where a resize simply does not apply (the template is then patched as
    without ``InPlace``): an init container (only sidecars resize, and an OOM of one is a template
    matter), a container without a limit on the pod, a pod that no longer has the container. It
    names the reason when the resize would change the pod's QoS class.
    """
    if kill.init or kill.limit is None or kill.container not in pod.containers:
        return None, ""
    limit, request = _ops_values(template_change, container_path)
    if limit is None:
        return None, ""
    index = pod.containers.index(kill.container)
    if pod.resources.get("containers"):
        before = workload.qos_class(pod.resources)
        if before == "Guaranteed":
            request = limit  # a Guaranteed pod's request rises with its limit, or it would become Burstable
        after = _qos_after(pod, index, limit, request if kill.request is not None else None)
        if after != before:
            return None, f"resizing pod {pod.name} in place {QOS_REFUSED} {before} -> {after}"
    path = f"/spec/containers/{index}"
    requests = (kill.request, request) if request is not None and kill.request is not None else None
    ops, before_words, after_words = memory_limits.raise_ops(path, kill.container, (kill.limit, limit), requests)
    if kill.container in pod.restart_on_resize:
        how = "the container restarts to apply it (resizePolicy memory: RestartContainer)"
    else:
        how = "without a restart (resizePolicy memory: NotRequired)"
    summary = f"resize container {kill.container} of pod {pod.name} in place: {before_words} -> {after_words}, {how}"
    change = changes.Change(
        "Pod",
        pod.namespace,
        pod.name,
        tuple(ops),
        before_words,
        after_words,
        summary,
        None,
        template_change.action,
        runbook.ActionType.RAISE_MEMORY_LIMIT,
        kill.container,
    )
    return change, ""


def again(pod: str) -> str:
    """Why a pod resized in place and killed since gets the template change, not a second resize.

    Seen on the real node: a container killed as soon as it starts is restarted by the kubelet
    with the resized limit on its own cgroup, but its pod's cgroup keeps the old sum (the kubelet
    updates the pod's cgroup only when it resizes a running container), so it is killed again at
    the old limit whatever the spec says. New pods get cgroups made for the new limit.
    """
    return f"pod {pod} was resized in place before and killed since: new pods get the limit"


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


@dataclasses.dataclass(frozen=True)
class Follow:
    """What the pod's status says about the operator's last in-place resize of it."""

    kill: oom.Kill | None = None
    """The kill the resize answered; None: no resize to follow."""
    reason: str = ""
    """``ResizeInfeasible``/``ResizeDeferred`` (fall back), ``ResizePending`` or ``ResizeCompleted`` (note it)."""
    text: str = ""
    fall_back: bool = False
    recheck_at: dt.datetime | None = None
    """When to look at the pod again if nothing changes (the deadline of a resize not done yet)."""


def follow(
    status: incident.IncidentStatus | None, pod: oom.PodFacts, deadline: dt.timedelta, now: dt.datetime
) -> Follow:
    """Where the operator's last in-place resize of ``pod`` stands, and what to do about it."""
    record = resized(status, pod.uid)
    if status is None or record is None or status.phase == incident.Phase.RESOLVED:
        return Follow()
    kill = next((k for k in pod.kills if k.key == record.occurrence), None) or _kill(record)
    target, r = resized_limit(record), pod.resize
    running = r.limits.get(kill.container)
    said = f": {r.message}" if r.message else ""
    if r.pending == "Infeasible":
        return Follow(kill, INFEASIBLE, f"the node cannot resize pod {pod.name} in place (Infeasible{said})", True)
    if not r.pending and not r.in_progress and running and quantity.parse(running) >= quantity.parse(target):
        if _noted(status, COMPLETED, record.at):
            return Follow()
        text = f"the kubelet resized container {kill.container} of pod {pod.name}: it runs with limits.memory={running}"
        return Follow(kill, COMPLETED, text)
    due = record.at + deadline
    if now >= due:
        where = f"PodResizePending {r.pending}" if r.pending else ""
        where = where or (f"PodResizeInProgress {r.in_progress}" if r.in_progress else "not reported done")
        text = (
            f"the in-place resize of pod {pod.name} is not done {durations.render(deadline)} after it was "
            f"applied ({where}{said})"
        )
        return Follow(kill, DEFERRED, text, True)
    if r.pending == "Deferred" and not _noted(status, PENDING, record.at):
        text = (
            f"the kubelet deferred the resize of pod {pod.name}{said}; the template is patched instead if it "
            f"is not done by {due.isoformat()}"
        )
        return Follow(kill, PENDING, text, recheck_at=due)
    return Follow(kill, recheck_at=due)


def done(status: incident.IncidentStatus, record: incident.ActionRecord) -> bool:
    """Whether the kubelet was seen to complete the resize ``record`` (``ResizeCompleted`` since)."""
    return _noted(status, COMPLETED, record.at)


def awaiting(status: incident.IncidentStatus | None) -> bool:
    """Whether the last action applied is an in-place resize the kubelet has not been seen to complete:
    the Incident is not settled (resolved) while it holds, however complete the workload's rollout."""
    applied = [a for a in (status.actions if status else ()) if a.state == incident.ActionState.APPLIED]
    if status is None or not applied or not applied[-1].reason.startswith(f"{RESIZED}:"):
        return False
    return not done(status, applied[-1])


def _noted(status: incident.IncidentStatus, type_: str, since: dt.datetime) -> bool:
    return any(e.type == type_ and e.at >= since for e in status.timeline)


def _kill(record: incident.ActionRecord) -> oom.Kill:
    """The kill a resize answered, from its key alone (the pod's status shows it no more)."""
    container = [*record.occurrence.split("/"), "", ""][1]
    return oom.Kill(record.occurrence, container, False, 0, "", None, None, None)
