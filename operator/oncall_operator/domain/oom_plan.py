"""What to do about an OOM kill: one exact patch to send, or a refusal with its reason.

``plan`` is pure: the pod's kills, the workload, the namespace's annotations, the runbook, the
Incident's guardrail state and ``now`` go in; a :class:`Plan` comes out. The executor runs it
(server-side dry-runs, then the patch) and :mod:`oom_incident` records the result. Each
guardrail answers a failure seen in other tools (docs/ARCHITECTURE.md, "Guardrails"), and they are checked in
a fixed order so the reason recorded is the most useful one: what the workload *is* (owner,
runbook, limit, cap, raises so far, QoS) before what it *says* (opt-out, paused, GitOps) before
timing (cooldown, rate) before the mode (dry-run).

Two checks make "no second raise for one OOM" hold even when the Incident lost the kill's key
(the operator died between the patch and the Incident write): the patch names the kill in a
workload annotation (:data:`workload.MARKER`), and a kill of a pod whose limit is already below
the template's is *superseded* (the template was raised since that pod was made).

The patch is a JSON patch with ``test`` operations on the container's name and on the exact
values it replaces, so it applies only to the workload as read: a concurrent edit makes it fail
(422) instead of being overwritten.
"""

import collections.abc as cabc
import copy
import dataclasses
import datetime as dt
import enum
from typing import Any

from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import (
    changes,
    guardrails,
    inplace,
    maintenance,
    matching,
    memory_limits,
    oom,
    quantity,
    workload,
)

ActionType = runbook.ActionType
State = incident.ActionState


class Mode(enum.StrEnum):
    NOTHING = "Nothing"  # every kill is counted already: no write at all
    RECORD = "Record"  # count the kills, no action (superseded)
    REFUSE = "Refuse"  # count them, record the action refused (and what it would have been)
    AWAIT = "AwaitApproval"  # the runbook wants a person to approve this action
    RECOVER = "Recover"  # the change was applied before a crash: record it as applied
    DRY_RUN = "DryRun"  # server-side dry-run only, record the planned patch
    APPLY = "Apply"  # server-side dry-run, then the patch


Change = changes.Change


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: Mode
    new: tuple[oom.Kill, ...] = ()
    kill: oom.Kill | None = None
    change: Change | None = None
    reason: str = ""
    message: str = ""
    needs_human: bool = False
    resize: Change | None = None
    """The in-place resize of the killed pod to try first (``strategy: InPlace``); ``change`` is then
    the template change recommended, and patched only when the resize is refused."""
    fallback: bool = False
    """The template patch after the kubelet found an in-place resize Infeasible: no new kill."""


@dataclasses.dataclass(frozen=True)
class Situation:
    pod: oom.PodFacts
    target_kind: str
    workload: workload.Workload | None
    namespace_annotations: cabc.Mapping[str, str]
    runbook: matching.Chosen | None
    status: incident.IncidentStatus | None
    dry_run: bool
    now: dt.datetime
    paused_by: maintenance.Mute | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a plan ended, once the executor ran it; ``state`` None means no action to record."""

    state: State | None
    reason: str = ""
    message: str = ""
    needs_human: bool = False


class _Stop(Exception):
    def __init__(self, plan: Plan) -> None:
        self.plan = plan


def raises(status: incident.IncidentStatus | None, window: dt.timedelta, now: dt.datetime) -> int:
    """Raises that count against ``maxRaises``: applied in this round (``guardrails.raises``, reset when
    the Incident reopens) and within the runbook's ``window``; never a lifetime count."""
    if status is None or status.phase == incident.Phase.RESOLVED:
        return 0  # the kill being planned reopens it: a new round
    recent = sum(
        1
        for a in status.actions
        if a.type == ActionType.RAISE_MEMORY_LIMIT and a.state == incident.ActionState.APPLIED and a.at > now - window
    )
    return min(status.guardrails.raises, recent)


def plan(s: Situation) -> Plan:
    seen = set(s.status.guardrails.seen) if s.status else set()
    new = tuple(k for k in s.pod.kills if k.key not in seen)
    try:
        if not new:
            waiting = inplace.pending(s.status, s.pod)
            return _fallback(s, waiting[-1]) if waiting else Plan(Mode.NOTHING)
        return _plan(s, new, new[-1])
    except _Stop as stop:
        return stop.plan


def _refuse(
    new: tuple[oom.Kill, ...],
    kill: oom.Kill,
    reason: str,
    message: str,
    change: Change | None = None,
    human: bool = True,
) -> _Stop:
    if change is not None:
        message = f"{message}; recommended: {change.summary}"
    return _Stop(Plan(Mode.REFUSE, new, kill, change, reason, message, human))


def _plan(s: Situation, new: tuple[oom.Kill, ...], kill: oom.Kill) -> Plan:
    w = s.workload
    if w is None and s.target_kind in workload.SUPPORTED:
        raise _refuse(new, kill, "OwnerNotFound", f"the {s.target_kind} that owns pod {s.pod.name} was not found")
    if w is None or s.target_kind not in workload.SUPPORTED:
        rule = _rule(s.runbook)
        reason = "NoTemplate" if s.target_kind in memory_limits.NO_TEMPLATE else "UnsupportedOwner"
        raise _refuse(new, kill, reason, memory_limits.for_pod(s.target_kind, s.pod.name, kill, rule))
    if w.marker and w.marker in {k.key for k in new}:
        return _recovered(s, w, new)
    if s.runbook is None:
        raise _refuse(new, kill, "NoRunbook", "no Runbook with trigger event OOMKilled matches this workload")
    spec = s.runbook.spec
    raise_action = next((a for a in spec.actions if a.type == ActionType.RAISE_MEMORY_LIMIT), None)
    restart_action = next((a for a in spec.actions if a.type == ActionType.RESTART_ROLLOUT), None)
    if raise_action is None and restart_action is None:
        raise _refuse(
            new, kill, "NoApplicableAction", f"Runbook {s.runbook.name} has no raiseMemoryLimit or restartRollout"
        )
    container = w.container(kill.container, kill.init)
    if container is None:
        raise _refuse(
            new, kill, "ContainerNotInTemplate", f"container {kill.container} is not in the {w.kind}'s pod template"
        )
    if raise_action is not None and raise_action.raise_memory_limit is not None:
        action, change, reason, message = _raise(s, w, container, kill, new, raise_action, restart_action)
    else:
        assert restart_action is not None
        action = restart_action
        _restarted_since(s, w, new, kill)
        change = _restart(w, restart_action.name, kill, s.now, new)
        reason, message = "Applied", change.summary
    _gates(s, w, new, kill, change, action)
    if s.dry_run or spec.guardrails.dry_run:
        where = "operator-wide (ONCALL_DRY_RUN)" if s.dry_run else f"Runbook {s.runbook.name} (guardrails.dryRun)"
        msg = f"dry-run mode {where}: {change.summary} planned, nothing written"
        return Plan(Mode.DRY_RUN, new, kill, change, "DryRun", msg, True)
    rule = _rule(s.runbook)
    if rule and rule.strategy == runbook.RaiseStrategy.IN_PLACE and change.type == ActionType.RAISE_MEMORY_LIMIT:
        resize = inplace.resize(s.pod, kill, change, container.path)
        if resize is not None:
            return Plan(Mode.APPLY, new, kill, change, reason, message, False, resize)
    if w.strategy == workload.ON_DELETE:
        msg = (
            f"{message}; the {w.kind} has updateStrategy OnDelete: its pods get the change only when "
            "they are deleted (kubectl delete pod), one at a time as the application allows"
        )
        return Plan(Mode.APPLY, new, kill, change, "RolloutOnDelete", msg, True)
    return Plan(Mode.APPLY, new, kill, change, reason, message, reason == "AtCap")


def _rule(chosen: matching.Chosen | None) -> runbook.RaiseMemoryLimit | None:
    """The runbook's raiseMemoryLimit settings, if it has that action."""
    actions = chosen.spec.actions if chosen else ()
    return next((a.raise_memory_limit for a in actions if a.raise_memory_limit is not None), None)


def _restarted_since(s: Situation, w: workload.Workload, new: tuple[oom.Kill, ...], kill: oom.Kill) -> None:
    if w.restarted_at and _time(s.pod.created) < _time(w.restarted_at):
        msg = f"pod {s.pod.name} predates the last restart of the rollout ({w.restarted_at})"
        raise _Stop(Plan(Mode.RECORD, new, kill, None, "Superseded", msg))


def _raise(
    s: Situation,
    w: workload.Workload,
    container: workload.Container,
    kill: oom.Kill,
    new: tuple[oom.Kill, ...],
    action: runbook.Action,
    restart_action: runbook.Action | None,
) -> tuple[runbook.Action, Change, str, str]:
    rule = action.raise_memory_limit
    assert rule is not None
    if container.limit is None:
        return _missing_limit(s, w, container, kill, new, action, rule)
    old = quantity.parse(container.limit)
    ran_with = quantity.parse(kill.limit) if kill.limit else None
    base = None
    if ran_with is not None and ran_with > old and inplace.resized(s.status, s.pod.uid) is not None:
        base = kill.limit  # resized in place before: raise from what the pod runs with
    elif ran_with is not None and ran_with != old:
        if ran_with < old:
            msg = f"pod {s.pod.name} ran with {kill.limit}; the template has {container.limit} since"
            raise _Stop(Plan(Mode.RECORD, new, kill, None, "Superseded", msg))
        raise _refuse(
            new,
            kill,
            "LimitManagedElsewhere",
            f"pod {s.pod.name} ran with {kill.limit} but the template says {container.limit}: "
            "something else sets this limit at admission (a VPA or a webhook)",
        )
    if old >= quantity.parse(rule.max_limit):
        if not rule.restart_at_cap:
            raise _refuse(new, kill, "AtCap", f"limit {container.limit} is at the cap {rule.max_limit}: likely a leak")
        _restarted_since(s, w, new, kill)
        change = _restart(w, restart_action.name if restart_action else action.name, kill, s.now, new)
        return action, change, "AtCap", f"limit {container.limit} is at the cap {rule.max_limit}: {change.summary}"
    change = _raise_change(w, container, new, kill, action.name, rule, base)
    _check_raises(s, new, kill, rule, change)
    return action, change, "Applied", change.summary


def _fallback(s: Situation, kill: oom.Kill) -> Plan:
    """The kubelet cannot resize the pod in place: patch the template to the limit the resize wanted."""
    w, rule = s.workload, _rule(s.runbook)
    record = inplace.resized(s.status, s.pod.uid)
    c = w.container(kill.container, kill.init) if w else None
    if w is None or rule is None or record is None or c is None or c.limit is None or s.runbook is None:
        return Plan(Mode.NOTHING)
    target = inplace.resized_limit(record)
    if quantity.parse(c.limit) >= quantity.parse(target):
        return Plan(Mode.NOTHING)  # the template has it already
    change = _raise_change(w, c, (), kill, record.action or "raise-memory", rule, target=target)
    subject = guardrails.Subject(w.kind, f"the {w.kind}", w.annotations, w.labels, w.paused)
    # the same action as the resize: opt-out, pause and GitOps hold; cooldown and rate were paid by the resize
    refused = guardrails.refusal(s.runbook.spec.guardrails, None, subject, s.namespace_annotations, s.now)
    text = f"the node cannot resize pod {s.pod.name} in place ({s.pod.resize_infeasible})"
    if refused is not None:
        msg = f"{text}; {refused.text}; recommended: {change.summary}"
        return Plan(Mode.REFUSE, (), kill, change, refused.reason, msg, True, None, True)
    return Plan(Mode.APPLY, (), kill, change, inplace.INFEASIBLE, f"{text}: {change.summary}", False, None, True)


def resized(plan: Plan) -> Plan:
    """``plan`` once its in-place resize was applied: the resize is the action, the template a recommendation."""
    assert plan.resize is not None and plan.change is not None
    msg = f"{plan.resize.summary}; the template is unchanged, recommended: {plan.change.summary}"
    return dataclasses.replace(plan, change=plan.resize, reason=inplace.RESIZED, message=msg, resize=None)


def without_resize(plan: Plan, refused: str) -> Plan:
    """``plan`` after the API server refused its in-place resize: the template patch instead."""
    return dataclasses.replace(plan, message=f"{refused}; instead: {plan.message}", resize=None)


def _check_raises(
    s: Situation, new: tuple[oom.Kill, ...], kill: oom.Kill, rule: runbook.RaiseMemoryLimit, change: Change
) -> None:
    assert s.runbook is not None
    window = s.runbook.spec.guardrails.window
    done = raises(s.status, durations.parse(window), s.now)
    if done >= rule.max_raises:
        raise _refuse(
            new,
            kill,
            "RaiseLimitReached",
            f"{done} raises in this round within the last {window} (maxRaises {rule.max_raises}): likely a leak",
            change,
        )


def _missing_limit(
    s: Situation,
    w: workload.Workload,
    c: workload.Container,
    kill: oom.Kill,
    new: tuple[oom.Kill, ...],
    action: runbook.Action,
    rule: runbook.RaiseMemoryLimit,
) -> tuple[runbook.Action, Change, str, str]:
    """A container without a memory limit: a limit from what the kill shows, set only with ``setMissingLimit``."""
    no_limit = f"container {c.name} has no memory limit in the {w.kind}'s template"
    found = memory_limits.basis(c.request, kill)
    if found is None:
        msg = f"{no_limit} and no request either: nothing to work a limit out from; set resources.limits.memory"
        raise _refuse(new, kill, "NoMemoryLimit", msg)
    base, how = found
    limit = memory_limits.recommended(base, rule)
    template = _with_memory(w.template, c, limit, None)
    qos_before = workload.qos_class(w.template.get("spec") or {})
    qos_after = workload.qos_class(template.get("spec") or {})
    change = _set_limit_change(w, c, kill, action.name, limit, how, template)
    # the pod may have had a limit at admission (a LimitRange default): what it ran as is what counts
    if qos_after not in (qos_before, s.pod.qos_class) and not rule.allow_qos_change:
        msg = f"{no_limit}; setting one would change the pod's QoS class {qos_before} -> {qos_after}"
        raise _refuse(new, kill, "QoSChange", msg, change)
    if not rule.set_missing_limit:
        raise _refuse(new, kill, "NoMemoryLimit", f"{no_limit} (raiseMemoryLimit.setMissingLimit is false)", change)
    _check_raises(s, new, kill, rule, change)
    return action, change, "Applied", change.summary


def _set_limit_change(
    w: workload.Workload,
    c: workload.Container,
    kill: oom.Kill,
    action: str,
    limit: str,
    how: str,
    template: cabc.Mapping[str, Any],
) -> Change:
    ops: list[dict[str, Any]] = [{"op": "test", "path": f"{c.path}/name", "value": c.name}]
    has_resources, has_limits = c.has_resources
    if not has_resources:
        ops.append({"op": "add", "path": f"{c.path}/resources", "value": {"limits": {"memory": limit}}})
    elif not has_limits:
        ops.append({"op": "add", "path": f"{c.path}/resources/limits", "value": {"memory": limit}})
    else:
        ops.append({"op": "add", "path": f"{c.path}/resources/limits/memory", "value": limit})
    ops += _marker_ops(w, kill)
    before, after = "limits.memory=none", f"limits.memory={limit}"
    summary = f"set a memory limit on container {c.name} in {w.kind} {w.name}: {before} -> {after} (from {how})"
    return _change(w, action, ActionType.RAISE_MEMORY_LIMIT, c.name, ops, (before, after, summary), template)


def _gates(
    s: Situation,
    w: workload.Workload,
    new: tuple[oom.Kill, ...],
    kill: oom.Kill,
    change: Change,
    action: runbook.Action,
) -> None:
    assert s.runbook is not None
    guard = s.runbook.spec.guardrails
    if action.approval == runbook.Approval.REQUIRED:
        msg = f"action {action.name} needs approval: {change.summary}"
        raise _Stop(Plan(Mode.AWAIT, new, kill, change, "ApprovalRequired", msg, True))
    subject = guardrails.Subject(w.kind, f"the {w.kind}", w.annotations, w.labels, w.paused)
    refused = guardrails.refusal(guard, s.status, subject, s.namespace_annotations, s.now, s.paused_by)
    if refused is not None:
        raise _refuse(new, kill, refused.reason, refused.text, change, human=refused.human)


def _recovered(s: Situation, w: workload.Workload, new: tuple[oom.Kill, ...]) -> Plan:
    kill = next(k for k in new if k.key == w.marker)
    c = w.container(kill.container, kill.init)
    after = f"limits.memory={c.limit}" if c and c.limit else f"restartedAt={w.restarted_at}"
    before = f"limits.memory={kill.limit}" if c and c.limit and kill.limit != c.limit else ""
    action_type = ActionType.RAISE_MEMORY_LIMIT if before else ActionType.RESTART_ROLLOUT
    change = _change(w, "recovered", action_type, kill.container, [], (before, after, ""), w.template)
    msg = f"the {w.kind} already carries the change for this kill ({after}); recorded after an operator restart"
    return Plan(Mode.RECOVER, new, kill, change, "Recovered", msg)


def _marker_ops(w: workload.Workload, kill: oom.Kill) -> list[dict[str, Any]]:
    return guardrails.marker_ops(w.annotations, w.resource_version, workload.MARKER, kill.key)


def _raise_change(
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
    rule, or to ``target`` exactly (the limit an in-place resize gave)."""
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
        template = _with_memory(w.template, c, new_limit_text, request)
        if rule.allow_qos_change or workload.qos_class(template.get("spec") or {}) == qos_before:
            chosen = (request, template)
            break
    if chosen is None:
        msg = f"raising {c.name} would change the pod's QoS class {qos_before} (allowQoSChange is false)"
        raise _refuse(new, kill, "QoSChange", msg)
    request, template = chosen
    requests = (c.request, request) if request is not None and c.request is not None else None
    ops, before, after = memory_limits.raise_ops(c.path, c.name, (c.limit, new_limit_text), requests)
    ops += _marker_ops(w, kill)
    summary = f"raise memory of container {c.name} in {w.kind} {w.name}: {before} -> {after}"
    return _change(w, action, ActionType.RAISE_MEMORY_LIMIT, c.name, ops, (before, after, summary), template)


def _change(
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


def _with_memory(
    template: cabc.Mapping[str, Any], c: workload.Container, limit: str, request: str | None
) -> dict[str, Any]:
    out = copy.deepcopy(dict(template))
    target = out["spec"]["initContainers" if c.init else "containers"][c.index]
    resources = target.setdefault("resources", {})
    resources.setdefault("limits", {})["memory"] = limit
    if request is not None:
        resources.setdefault("requests", {})["memory"] = request
    return out


def _restart(w: workload.Workload, action: str, kill: oom.Kill, now: dt.datetime, new: tuple[oom.Kill, ...]) -> Change:
    if w.kind == "CronJob":
        msg = "a CronJob has no rollout to restart: each run starts new pods; its limit needs a person"
        raise _refuse(new, kill, "NothingToRestart", msg)
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
    ops += _marker_ops(w, kill)
    template = copy.deepcopy(dict(w.template))
    template.setdefault("metadata", {}).setdefault("annotations", {})[workload.RESTARTED_AT] = stamp
    before, after = f"restartedAt={w.restarted_at or 'never'}", f"restartedAt={stamp}"
    summary = f"restart the rollout of {w.kind} {w.name} ({workload.RESTARTED_AT}={stamp})"
    return _change(w, action, ActionType.RESTART_ROLLOUT, kill.container, ops, (before, after, summary), template)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else dt.datetime.min.replace(tzinfo=dt.UTC)


def left_to_vpa(plan: Plan, manager: str) -> Plan:
    """A change a VerticalPodAutoscaler would fight: recorded as a recommendation, nothing written.

    The VPA reacts to OOM kills itself; no human is needed for this refusal (the escalation still
    runs by the runbook's severity)."""
    assert plan.change is not None
    msg = f"{manager} manages this workload's resources: left to it; recommended: {plan.change.summary}"
    return dataclasses.replace(plan, mode=Mode.REFUSE, reason="ManagedByVPA", message=msg, needs_human=False)


def outcome(plan: Plan, rejected: str | None = None, failed: str | None = None) -> Outcome:
    """The result of running ``plan``: ``rejected`` is a dry-run's refusal, ``failed`` the patch's error."""
    if plan.mode == Mode.RECORD:
        return Outcome(None, plan.reason, plan.message)
    if plan.mode == Mode.RECOVER:
        return Outcome(State.APPLIED, plan.reason, plan.message)
    if plan.mode == Mode.REFUSE:
        return Outcome(State.REFUSED, plan.reason, plan.message, plan.needs_human)
    if plan.mode == Mode.AWAIT:
        return Outcome(State.AWAITING_APPROVAL, plan.reason, plan.message, True)
    if plan.mode == Mode.DRY_RUN:
        verdict = f"the server would reject it: {rejected}" if rejected else "the server-side dry-run accepted it"
        return Outcome(State.DRY_RUN, "DryRunRejected" if rejected else "DryRun", f"{plan.message}; {verdict}", True)
    if rejected:
        assert plan.change is not None
        msg = f"server-side dry-run rejected {plan.change.summary}: {rejected}; nothing written"
        return Outcome(State.REFUSED, "DryRunRejected", msg, True)
    if failed:
        return Outcome(State.FAILED, "PatchFailed", failed, True)
    return Outcome(State.APPLIED, plan.reason, plan.message, plan.needs_human)
