"""How much memory an OOM-killed container gets, or why it gets none: the raise and its limits.

From the container's template limit (or, for a pod resized in place before, what it runs with) by
VPA's rule; a missing limit worked out from what the kill shows (written only with
``setMissingLimit``); a kill of a pod made before the template was raised is *superseded*; a
limit set at admission by someone else is theirs; at the cap, a restart or a human; and never
more raises than ``maxRaises`` in this round within the runbook's ``window``.
"""

import datetime as dt

from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import inplace, memory_limits, oom, oom_changes, quantity, workload
from oncall_operator.domain.oom_types import ActionType, Change, Mode, Plan, Situation, Stop, refuse, resize_deadline


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


def restarted_since(s: Situation, w: workload.Workload, new: tuple[oom.Kill, ...], kill: oom.Kill) -> None:
    """Stop with ``Superseded`` when the killed pod predates the rollout's last restart."""
    if w.restarted_at and _time(s.pod.created) < _time(w.restarted_at):
        msg = f"pod {s.pod.name} predates the last restart of the rollout ({w.restarted_at})"
        raise Stop(Plan(Mode.RECORD, new, kill, None, "Superseded", msg))


def raise_memory(
    s: Situation,
    w: workload.Workload,
    container: workload.Container,
    kill: oom.Kill,
    new: tuple[oom.Kill, ...],
    action: runbook.Action,
    restart_action: runbook.Action | None,
) -> tuple[runbook.Action, Change, str, str]:
    """The action taken, its change, and the reason and message to record."""
    rule = action.raise_memory_limit
    assert rule is not None
    if container.limit is None:
        return _missing_limit(s, w, container, kill, new, action, rule)
    old = quantity.parse(container.limit)
    ran_text = kill.ran_with or kill.limit
    ran_with = quantity.parse(ran_text) if ran_text else None
    base = None
    record = inplace.resized(s.status, s.pod.uid)
    if record is not None and s.status is not None and not inplace.done(s.status, record):
        # killed at its old limit while the kubelet has yet to apply the resize: the follow-up decides
        msg = (
            f"pod {s.pod.name} was resized in place ({record.after}) at {record.at.isoformat()} and the kubelet "
            "has not reported it done: the kill is counted, the resize followed"
        )
        raise Stop(
            Plan(Mode.RECORD, new, kill, None, "Superseded", msg, recheck_at=record.at + resize_deadline(s.runbook))
        )
    if ran_with is not None and ran_with > old and record is not None:
        base = ran_text  # resized in place before: raise from what the pod runs with
    elif ran_with is not None and ran_with != old:
        if ran_with < old:
            msg = f"pod {s.pod.name} ran with {ran_text}; the template has {container.limit} since"
            raise Stop(Plan(Mode.RECORD, new, kill, None, "Superseded", msg))
        raise refuse(
            new,
            kill,
            "LimitManagedElsewhere",
            f"pod {s.pod.name} ran with {ran_text} but the template says {container.limit}: "
            "something else sets this limit at admission (a VPA or a webhook)",
        )
    if old >= quantity.parse(rule.max_limit):
        if not rule.restart_at_cap:
            raise refuse(new, kill, "AtCap", f"limit {container.limit} is at the cap {rule.max_limit}: likely a leak")
        restarted_since(s, w, new, kill)
        change = oom_changes.restart(w, restart_action.name if restart_action else action.name, kill, s.now, new)
        return action, change, "AtCap", f"limit {container.limit} is at the cap {rule.max_limit}: {change.summary}"
    change = oom_changes.raise_limit(w, container, new, kill, action.name, rule, base)
    check_raises(s, new, kill, rule, change)
    return action, change, "Applied", change.summary


def check_raises(
    s: Situation, new: tuple[oom.Kill, ...], kill: oom.Kill, rule: runbook.RaiseMemoryLimit, change: Change
) -> None:
    assert s.runbook is not None
    window = s.runbook.spec.guardrails.window
    done = raises(s.status, durations.parse(window), s.now)
    if done >= rule.max_raises:
        raise refuse(
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
        raise refuse(new, kill, "NoMemoryLimit", msg)
    base, how = found
    limit = memory_limits.recommended(base, rule)
    template = oom_changes.with_memory(w.template, c, limit, None)
    qos_before = workload.qos_class(w.template.get("spec") or {})
    qos_after = workload.qos_class(template.get("spec") or {})
    change = oom_changes.set_limit(w, c, kill, action.name, limit, how, template)
    # the pod may have had a limit at admission (a LimitRange default): what it ran as is what counts
    if qos_after not in (qos_before, s.pod.qos_class) and not rule.allow_qos_change:
        msg = f"{no_limit}; setting one would change the pod's QoS class {qos_before} -> {qos_after}"
        raise refuse(new, kill, "QoSChange", msg, change)
    if not rule.set_missing_limit:
        raise refuse(new, kill, "NoMemoryLimit", f"{no_limit} (raiseMemoryLimit.setMissingLimit is false)", change)
    check_raises(s, new, kill, rule, change)
    return action, change, "Applied", change.summary


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else dt.datetime.min.replace(tzinfo=dt.UTC)
