"""The exact JSON patches an OOM plan sends to a workload: raise a memory limit, set a missing one, restart.

Each is a JSON patch with ``test`` operations on the container's name and on the exact values it
replaces, so it applies only to the workload as read: a concurrent edit makes it fail (422)
instead of being overwritten. Each also names the kill it answers in a workload annotation
(:data:`workload.MARKER`), in the same patch, so a crash before the Incident write cannot cause a
second raise. The patched pod template goes with it: the executor dry-runs a Pod made from it.
"""

import collections.abc as cabc
import copy
import datetime as dt
from typing import Any

from oncall_operator.api import runbook
from oncall_operator.domain import guardrails, memory_limits, oom, quantity, workload
from oncall_operator.domain.oom_types import ActionType, Change, refuse


def marker_ops(w: workload.Workload, kill: oom.Kill) -> list[dict[str, Any]]:
    return guardrails.marker_ops(w.annotations, w.resource_version, workload.MARKER, kill.key)


def raise_limit(
    w: workload.Workload,
    c: workload.Container,
    new: tuple[oom.Kill, ...],
    kill: oom.Kill,
    action: str,
    rule: runbook.RaiseMemoryLimit,
    base: str | None = None,
    target: str | None = None,
) -> Change:
    """The template raise: from the template's limit (or ``base``, what a resized pod runs with) by the
    rule, or to ``target`` exactly (the limit an in-place resize gave). The request follows where the
    QoS class would otherwise change (a Guaranteed pod's request rises with its limit)."""
    assert c.limit is not None
    old = quantity.parse(base or c.limit)
    new_limit, new_limit_text = (quantity.parse(target), target) if target else memory_limits.next_limit(old, rule)
    candidates: list[str | None] = [None]
    if c.request is not None:
        old_req = quantity.parse(c.request)
        if rule.raise_request:
            req, req_text = memory_limits.next_limit(old_req, rule)
            candidates = [req_text if req < new_limit else new_limit_text, new_limit_text, None]
        else:
            candidates = [None, new_limit_text]
    qos_before = workload.qos_class(w.template.get("spec") or {})
    chosen = None
    for request in candidates:
        template = with_memory(w.template, c, new_limit_text, request)
        if rule.allow_qos_change or workload.qos_class(template.get("spec") or {}) == qos_before:
            chosen = (request, template)
            break
    if chosen is None:
        msg = f"raising {c.name} would change the pod's QoS class {qos_before} (allowQoSChange is false)"
        raise refuse(new, kill, "QoSChange", msg)
    request, template = chosen
    requests = (c.request, request) if request is not None and c.request is not None else None
    ops, before, after = memory_limits.raise_ops(c.path, c.name, (c.limit, new_limit_text), requests)
    ops += marker_ops(w, kill)
    summary = f"raise memory of container {c.name} in {w.kind} {w.name}: {before} -> {after}"
    return change(w, action, ActionType.RAISE_MEMORY_LIMIT, c.name, ops, (before, after, summary), template)


def set_limit(
    w: workload.Workload,
    c: workload.Container,
    kill: oom.Kill,
    action: str,
    limit: str,
    how: str,
    template: cabc.Mapping[str, Any],
) -> Change:
    """Give a container without a memory limit the ``limit`` worked out ``how``."""
    ops: list[dict[str, Any]] = [{"op": "test", "path": f"{c.path}/name", "value": c.name}]
    has_resources, has_limits = c.has_resources
    if not has_resources:
        ops.append({"op": "add", "path": f"{c.path}/resources", "value": {"limits": {"memory": limit}}})
    elif not has_limits:
        ops.append({"op": "add", "path": f"{c.path}/resources/limits", "value": {"memory": limit}})
    else:
        ops.append({"op": "add", "path": f"{c.path}/resources/limits/memory", "value": limit})
    ops += marker_ops(w, kill)
    before, after = "limits.memory=none", f"limits.memory={limit}"
    summary = f"set a memory limit on container {c.name} in {w.kind} {w.name}: {before} -> {after} (from {how})"
    return change(w, action, ActionType.RAISE_MEMORY_LIMIT, c.name, ops, (before, after, summary), template)


def change(
    w: workload.Workload,
    action: str,
    type_: ActionType,
    container: str,
    ops: list[dict[str, Any]],
    words: tuple[str, str, str],
    template: cabc.Mapping[str, Any],
) -> Change:
    """A change of workload ``w``; ``words`` are its before, after and summary."""
    before, after, summary = words
    return Change(w.kind, w.namespace, w.name, tuple(ops), before, after, summary, template, action, type_, container)


def with_memory(
    template: cabc.Mapping[str, Any], c: workload.Container, limit: str, request: str | None
) -> dict[str, Any]:
    """A copy of the pod ``template`` with container ``c``'s memory limit (and request) set."""
    out = copy.deepcopy(dict(template))
    target = out["spec"]["initContainers" if c.init else "containers"][c.index]
    resources = target.setdefault("resources", {})
    resources.setdefault("limits", {})["memory"] = limit
    if request is not None:
        resources.setdefault("requests", {})["memory"] = request
    return out


def restart(w: workload.Workload, action: str, kill: oom.Kill, now: dt.datetime, new: tuple[oom.Kill, ...]) -> Change:
    """``kubectl rollout restart``: the template annotation it sets, as an exact patch."""
    if w.kind == "CronJob":
        msg = "a CronJob has no rollout to restart: each run starts new pods; its limit needs a person"
        raise refuse(new, kill, "NothingToRestart", msg)
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    key = guardrails.escape(workload.RESTARTED_AT)
    where = f"{w.template_path}/metadata/annotations"
    ops: list[dict[str, Any]] = []
    if w.template_annotations is None:
        ops += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": w.resource_version},
            {"op": "add", "path": where, "value": {workload.RESTARTED_AT: stamp}},
        ]
    else:
        if w.restarted_at:
            ops.append({"op": "test", "path": f"{where}/{key}", "value": w.restarted_at})
        ops.append({"op": "add", "path": f"{where}/{key}", "value": stamp})
    ops += marker_ops(w, kill)
    template = copy.deepcopy(dict(w.template))
    template.setdefault("metadata", {}).setdefault("annotations", {})[workload.RESTARTED_AT] = stamp
    before, after = f"restartedAt={w.restarted_at or 'never'}", f"restartedAt={stamp}"
    summary = f"restart the rollout of {w.kind} {w.name} ({workload.RESTARTED_AT}={stamp})"
    return change(w, action, ActionType.RESTART_ROLLOUT, kill.container, ops, (before, after, summary), template)
