"""What to do about an OOM kill: one exact patch to send, or a refusal with its reason.

``plan`` is pure: the pod's kills, the workload, the namespace's annotations, the runbook, the
Incident's guardrail state and ``now`` go in; a :class:`Plan` comes out. The executor runs it
(server-side dry-runs, then the patch) and :mod:`oom_incident` records the result. Each
guardrail answers a failure seen in other tools (docs/ARCHITECTURE.md, "Guardrails"), and they are checked in
a fixed order so the reason recorded is the most useful one: what the workload *is* (owner,
runbook, limit, cap, raises so far, QoS) before what it *says* (opt-out, paused, GitOps) before
timing (cooldown, rate) before the mode (dry-run).

The pieces: this module chooses by owner and action and applies the gates; :mod:`oom_raise`
works out the memory (and why not); :mod:`oom_changes` writes the patches; :mod:`inplace` the
pod's resize and its follow-up; :mod:`oom_types` holds the words they share.

Two checks make "no second raise for one OOM" hold even when the Incident lost the kill's key
(the operator died between the patch and the Incident write): the patch names the kill in a
workload annotation (:data:`workload.MARKER`), and a kill of a pod whose limit is already below
the template's is *superseded* (the template was raised since that pod was made).
"""

import dataclasses

from oncall_operator.api import runbook
from oncall_operator.domain import guardrails, inplace, memory_limits, oom, oom_changes, oom_raise, quantity, workload
from oncall_operator.domain.oom_types import (
    ActionType,
    Change,
    Mode,
    Outcome,
    Plan,
    Situation,
    State,
    Stop,
    refuse,
    resize_deadline,
    rule,
)

__all__ = [
    "Change",
    "Mode",
    "Outcome",
    "Plan",
    "Situation",
    "left_to_vpa",
    "outcome",
    "plan",
    "raises",
    "resized",
    "without_resize",
]

raises = oom_raise.raises


def plan(s: Situation) -> Plan:
    seen = set(s.status.guardrails.seen) if s.status else set()
    new = tuple(k for k in s.pod.kills if k.key not in seen)
    try:
        if not new:
            return _follow(s)
        return _plan(s, new, new[-1])
    except Stop as stop:
        return stop.plan


def _plan(s: Situation, new: tuple[oom.Kill, ...], kill: oom.Kill) -> Plan:
    w = s.workload
    if w is None and s.target_kind in workload.SUPPORTED:
        raise refuse(new, kill, "OwnerNotFound", f"the {s.target_kind} that owns pod {s.pod.name} was not found")
    if w is None or s.target_kind not in workload.SUPPORTED:
        reason = "NoTemplate" if s.target_kind in memory_limits.NO_TEMPLATE else "UnsupportedOwner"
        raise refuse(new, kill, reason, memory_limits.for_pod(s.target_kind, s.pod.name, kill, rule(s.runbook)))
    if w.marker and w.marker in {k.key for k in new}:
        return _recovered(s, w, new)
    if s.runbook is None:
        raise refuse(new, kill, "NoRunbook", "no Runbook with trigger event OOMKilled matches this workload")
    spec = s.runbook.spec
    raise_action = next((a for a in spec.actions if a.type == ActionType.RAISE_MEMORY_LIMIT), None)
    restart_action = next((a for a in spec.actions if a.type == ActionType.RESTART_ROLLOUT), None)
    if raise_action is None and restart_action is None:
        raise refuse(
            new, kill, "NoApplicableAction", f"Runbook {s.runbook.name} has no raiseMemoryLimit or restartRollout"
        )
    container = w.container(kill.container, kill.init)
    if container is None:
        raise refuse(
            new, kill, "ContainerNotInTemplate", f"container {kill.container} is not in the {w.kind}'s pod template"
        )
    if raise_action is not None and raise_action.raise_memory_limit is not None:
        action, change, reason, message = oom_raise.raise_memory(
            s, w, container, kill, new, raise_action, restart_action
        )
    else:
        assert restart_action is not None
        action = restart_action
        oom_raise.restarted_since(s, w, new, kill)
        change = oom_changes.restart(w, restart_action.name, kill, s.now, new)
        reason, message = "Applied", change.summary
    _gates(s, w, new, kill, change, action)
    if s.dry_run or spec.guardrails.dry_run:
        where = "operator-wide (ONCALL_DRY_RUN)" if s.dry_run else f"Runbook {s.runbook.name} (guardrails.dryRun)"
        msg = f"dry-run mode {where}: {change.summary} planned, nothing written"
        return Plan(Mode.DRY_RUN, new, kill, change, "DryRun", msg, True)
    raise_rule = rule(s.runbook)
    if (
        raise_rule
        and raise_rule.strategy == runbook.RaiseStrategy.IN_PLACE
        and change.type == ActionType.RAISE_MEMORY_LIMIT
    ):
        resize, refused = inplace.resize(s.pod, kill, change, container.path)
        if inplace.resized(s.status, s.pod.uid) is not None:  # once per pod (see inplace.again)
            resize, refused = None, inplace.again(s.pod.name)
        if resize is not None:
            due = s.now + resize_deadline(s.runbook)
            return Plan(Mode.APPLY, new, kill, change, reason, message, False, resize, recheck_at=due)
        if refused:
            message = f"{refused}; instead: {message}"
    if w.strategy == workload.ON_DELETE:
        msg = (
            f"{message}; the {w.kind} has updateStrategy OnDelete: its pods get the change only when "
            "they are deleted (kubectl delete pod), one at a time as the application allows"
        )
        return Plan(Mode.APPLY, new, kill, change, "RolloutOnDelete", msg, True)
    return Plan(Mode.APPLY, new, kill, change, reason, message, reason == "AtCap")


def _follow(s: Situation) -> Plan:
    """No new kill: follow the operator's last in-place resize of the pod, if there is one to follow."""
    f = inplace.follow(s.status, s.pod, resize_deadline(s.runbook), s.now)
    if f.kill is None:
        return Plan(Mode.NOTHING)
    if f.fall_back:
        return _fallback(s, f.kill, f.reason, f.text)
    if f.reason:
        return Plan(Mode.RECORD, (), f.kill, None, f.reason, f.text, follow_up=True, recheck_at=f.recheck_at)
    return Plan(Mode.NOTHING, recheck_at=f.recheck_at)


def _fallback(s: Situation, kill: oom.Kill, reason: str, text: str) -> Plan:
    """The kubelet cannot resize the pod in place: patch the template to the limit the resize wanted."""
    w, raise_rule = s.workload, rule(s.runbook)
    record = inplace.resized(s.status, s.pod.uid)
    c = w.container(kill.container, kill.init) if w else None
    if w is None or raise_rule is None or record is None or c is None or c.limit is None or s.runbook is None:
        return Plan(Mode.NOTHING)
    target = inplace.resized_limit(record)
    if quantity.parse(c.limit) >= quantity.parse(target):
        return Plan(Mode.NOTHING)  # the template has it already
    change = oom_changes.raise_limit(w, c, (), kill, record.action or "raise-memory", raise_rule, target=target)
    subject = guardrails.Subject(w.kind, f"the {w.kind}", w.annotations, w.labels, w.paused)
    # the same action as the resize: opt-out, pause and GitOps hold; cooldown and rate were paid by the resize
    refused = guardrails.refusal(s.runbook.spec.guardrails, None, subject, s.namespace_annotations, s.now)
    if refused is not None:
        msg = f"{text}; {refused.text}; recommended: {change.summary}"
        return Plan(Mode.REFUSE, (), kill, change, refused.reason, msg, True, None, True)
    return Plan(Mode.APPLY, (), kill, change, reason, f"{text}: {change.summary}", False, None, True)


def resized(plan: Plan) -> Plan:
    """``plan`` once its in-place resize was applied: the resize is the action, the template a recommendation."""
    assert plan.resize is not None and plan.change is not None
    msg = f"{plan.resize.summary}; the template is unchanged, recommended: {plan.change.summary}"
    return dataclasses.replace(plan, change=plan.resize, reason=inplace.RESIZED, message=msg, resize=None)


def without_resize(plan: Plan, refused: str) -> Plan:
    """``plan`` after the API server refused its in-place resize: the template patch instead."""
    return dataclasses.replace(plan, message=f"{refused}; instead: {plan.message}", resize=None)


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
        raise Stop(Plan(Mode.AWAIT, new, kill, change, "ApprovalRequired", msg, True))
    subject = guardrails.Subject(w.kind, f"the {w.kind}", w.annotations, w.labels, w.paused)
    refused = guardrails.refusal(guard, s.status, subject, s.namespace_annotations, s.now, s.paused_by)
    if refused is not None:
        raise refuse(new, kill, refused.reason, refused.text, change, human=refused.human)


def _recovered(s: Situation, w: workload.Workload, new: tuple[oom.Kill, ...]) -> Plan:
    kill = next(k for k in new if k.key == w.marker)
    c = w.container(kill.container, kill.init)
    after = f"limits.memory={c.limit}" if c and c.limit else f"restartedAt={w.restarted_at}"
    before = f"limits.memory={kill.limit}" if c and c.limit and kill.limit != c.limit else ""
    action_type = ActionType.RAISE_MEMORY_LIMIT if before else ActionType.RESTART_ROLLOUT
    change = oom_changes.change(w, "recovered", action_type, kill.container, [], (before, after, ""), w.template)
    msg = f"the {w.kind} already carries the change for this kill ({after}); recorded after an operator restart"
    return Plan(Mode.RECOVER, new, kill, change, "Recovered", msg)


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
