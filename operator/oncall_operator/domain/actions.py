"""A runbook's actions on an alert Incident: which one is due, the exact change, and how it is recorded.

Pure: the Incident, the Runbook, the objects read from the API server (the target workload,
its ReplicaSets, the namespace's HPAs, the flag ConfigMap, the escalation policy) and ``now``
go in; a :class:`Plan` comes out, and :func:`record` writes the result into the Incident's
status. The shell (:mod:`oncall_operator.executor.actions`) reads, dry-runs, patches and sends.

**The order rule.** Each time an alert Incident opens or fires again (``status.occurrences``
grows, which a reopening also does) a new *round* starts, keyed ``round-<occurrences>``; every
``status.actions`` entry carries its round in ``occurrence``. Within a round the runbook's
actions run in order, one at a time:

- an action refused because it *does not apply* (:data:`DOES_NOT_APPLY`: nothing was changed
  recently, there is no previous revision, the alert names no flag...) lets the next one run;
- an applied (or dry-run) action stops the list, unless it says ``continue: true``;
- ``notify`` never stops the list: telling a team mitigates nothing;
- an action refused by a guardrail (cooldown, rate, opt-out, GitOps, paused, at max) or that
  failed stops the list: a lower-priority action must not run *because* a guardrail said no;
- an action that needs approval is recorded ``AwaitingApproval`` and the list waits for
  ``kubectl oncall approve``, which records the approval for that round in ``status.approvals``.

So "roll back when the Deployment changed recently, else scale up" is two actions in that order,
and "switch the flag off when the alert names one" comes first: with a flag named it is the
likeliest cause (a feature bug), without one it does not apply and the rollback is considered.

Every workload or ConfigMap change is a JSON patch with ``test`` operations on the values it
replaces, and it writes :data:`MARKER` (incident/round/action) in the same patch, so a crash
between the patch and the Incident write is recorded as applied instead of acting twice.
Guardrails are checked in the same order as for OOM kills: what the action *is* (applies? at
max? HPA?) before approval, then scope, opt-out, paused, GitOps, cooldown, rate, dry-run.
``notify`` changes nothing in the cluster, so cooldown, rate, opt-out and dry-run do not hold it back.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import json
from typing import Any

from oncall_operator.api import incident, runbook, schedule
from oncall_operator.api import policy as policies
from oncall_operator.domain import action_changes, action_types, guardrails, lifecycle, matching, tenancy

# the plan's vocabulary lives in action_types; the executor and the tests know it by these names here
DOES_NOT_APPLY = action_types.DOES_NOT_APPLY
MARKER = action_types.MARKER
REVISION = action_types.REVISION
ActionType = action_types.ActionType
Change = action_types.Change
Due = action_types.Due
Facts = action_types.Facts
Message = action_types.Message
Mode = action_types.Mode
Phase = action_types.Phase
Plan = action_types.Plan
State = action_types.State
Stop = action_types.Stop
refuse = action_types.refuse
flag_namespace = action_changes.flag_namespace
ACTIONS_MAX, TIMES_MAX = 200, 100
"""Bounds of ``status.actions`` and of the action times the rate guardrail counts."""


def round_key(status: incident.IncidentStatus) -> str:
    return f"round-{max(status.occurrences, 1)}"


def reason_of(record: incident.ActionRecord) -> str:
    return record.reason.split(":", 1)[0]


def next_action(spec: runbook.RunbookSpec, status: incident.IncidentStatus | None) -> Due | None:
    """The action to plan now in the current round, or None when the round is over or waiting."""
    if status is None or status.phase in (None, Phase.RESOLVED):
        return None
    rnd = round_key(status)
    records = [r for r in status.actions if r.occurrence == rnd]
    for action in spec.actions:
        mine = [r for r in records if r.action == action.name]
        if not mine:
            return Due(action, rnd)
        last = mine[-1]
        if last.state == State.AWAITING_APPROVAL:
            given = next((a for a in status.approvals if a.action == action.name and a.round == rnd), None)
            return Due(action, rnd, given) if given is not None else None
        if action.type == ActionType.NOTIFY:
            continue
        if last.state in (State.APPLIED, State.DRY_RUN):
            if action.continue_:
                continue
            return None
        if last.state == State.REFUSED and reason_of(last) in DOES_NOT_APPLY:
            continue
        return None
    return None


def marker_value(inc: incident.Incident, rnd: str, action: str) -> str:
    return f"{inc.metadata.namespace}/{inc.metadata.name}/{rnd}/{action}"


def plan(inc: incident.Incident, chosen: matching.Chosen, due: Due, facts: Facts) -> Plan:  # one action, as decided now
    try:
        return _plan(inc, chosen, due, facts)
    except Stop as stop:
        return stop.plan


def _plan(inc: incident.Incident, chosen: matching.Chosen, due: Due, facts: Facts) -> Plan:
    action = due.action
    if action.type == ActionType.NOTIFY:
        message = _notify(inc, due, facts)
        if facts.muted_by is not None:  # held like a page: recorded, sent when the window ends
            held = facts.muted_by.text(f"notify to {', '.join(message.channels)}")
            raise Stop(Plan(action, due.round, Mode.REFUSE, None, message, "Maintenance", held, False))
        if action.approval == runbook.Approval.REQUIRED and due.approval is None:
            text = f"action {action.name} needs approval: send to {', '.join(message.channels)}"
            raise Stop(Plan(action, due.round, Mode.AWAIT, None, message, "ApprovalRequired", text, True))
        return Plan(action, due.round, Mode.NOTIFY, None, message, "Notify", message.text)
    if action.type in (ActionType.RAISE_MEMORY_LIMIT, ActionType.RESTART_ROLLOUT):
        raise refuse(
            due,
            "NotForAlerts",
            f"{action.type.value} acts on an OOM kill's facts (the pod, its container and limit): the OOM watch "
            "runs it when the container is OOM-killed (trigger event OOMKilled), not on an alert",
        )
    outside = tenancy.target_refusal(inc.metadata.namespace, inc.spec.target.namespace)
    if outside is not None:
        raise refuse(due, "TargetOutsideNamespace", outside)
    key = marker_value(inc, due.round, action.name)
    if action.type == ActionType.SET_FEATURE_FLAG:
        change, obj = action_changes.flag(inc, due, facts, key), facts.config_map
        where = f"the ConfigMap {change.name}"
    else:
        obj = facts.target
        change = action_changes.workload_change(inc, due, facts, key)
        where = f"the {change.kind}"
    assert obj is not None
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations")
    if (annotations or {}).get(MARKER) == key:
        text = f"{where} already carries this action's change ({MARKER}); recorded after an operator restart"
        return Plan(action, due.round, Mode.RECOVER, change, None, "Recovered", text)
    if action.approval == runbook.Approval.REQUIRED and due.approval is None:
        text = f"action {action.name} needs approval (kubectl oncall approve {inc.metadata.name} {action.name}): "
        raise Stop(Plan(action, due.round, Mode.AWAIT, change, None, "ApprovalRequired", text + change.summary, True))
    _gates(inc, chosen, due, facts, change, obj, where)
    approved = f" (approved by {due.approval.by})" if due.approval else ""
    guard = chosen.spec.guardrails
    if facts.dry_run or guard.dry_run:
        mode = "operator-wide (ONCALL_DRY_RUN)" if facts.dry_run else f"Runbook {chosen.name} (guardrails.dryRun)"
        text = f"dry-run mode {mode}: {change.summary} planned{approved}, nothing written"
        return Plan(action, due.round, Mode.DRY_RUN, change, None, "DryRun", text, True)
    return Plan(action, due.round, Mode.APPLY, change, None, "Applied", change.summary + approved)


def _gates(
    inc: incident.Incident,
    chosen: matching.Chosen,
    due: Due,
    facts: Facts,
    change: Change,
    obj: cabc.Mapping[str, Any],
    where: str,
) -> None:
    guard = chosen.spec.guardrails
    meta = obj.get("metadata") or {}
    if not facts.in_scope:
        raise refuse(due, "OutOfScope", f"namespace {change.namespace} is outside the operator's watch scope")
    paused = change.kind != "ConfigMap" and bool((obj.get("spec") or {}).get("paused"))
    subject = guardrails.Subject(change.kind, where, meta.get("annotations"), meta.get("labels") or {}, paused)
    refused = guardrails.refusal(guard, inc.status, subject, facts.namespace_annotations, facts.now, facts.paused_by)
    if refused is not None:
        raise refuse(due, refused.reason, refused.text, change, human=refused.human)


def _notify(inc: incident.Incident, due: Due, facts: Facts) -> Message:
    settings = due.action.notify
    assert settings is not None
    spec = facts.policy
    if spec is None:
        raise refuse(due, "NoPolicy", "the Incident has no escalation policy, so no channel to notify")
    names = {c.name for c in spec.channels}
    if settings.channel:
        if settings.channel not in names:
            raise refuse(due, "NoChannel", f"channel {settings.channel} is not in the escalation policy")
        channel = settings.channel
    team = next((t for t in spec.teams if t.name == settings.team), None)
    who = (schedule.Member(name=team.name, email=team.email),) if team is not None and team.email else ()
    if not settings.channel:
        mail = next((c.name for c in spec.channels if c.type == policies.ChannelType.EMAIL), None)
        fallback = mail if who else None  # a team with an address but no channel is mailed
        if team is None or not (team.channel or fallback):
            what = "is not in the escalation policy's teams" if team is None else "has no channel"
            raise refuse(due, "NoChannel", f"team {settings.team} {what}")
        channel = team.channel or fallback or ""
        if channel not in names:
            raise refuse(due, "NoChannel", f"team {settings.team}'s channel {team.channel} is not in the policy")
    text = settings.message or f"Runbook action {due.action.name} for incident {inc.metadata.name}: {inc.spec.title}"
    return Message((channel,), text, who)


@dataclasses.dataclass(frozen=True)
class Outcome:
    state: State
    reason: str
    text: str
    needs_human: bool = False


def outcome(p: Plan, rejected: str | None = None, failed: str | None = None) -> Outcome:
    """How ``p`` ended: ``rejected`` is a server-side dry-run's refusal, ``failed`` the write's (or send's) error."""
    if p.mode == Mode.REFUSE:
        return Outcome(State.REFUSED, p.reason, p.text, p.needs_human)
    if p.mode == Mode.AWAIT:
        return Outcome(State.AWAITING_APPROVAL, p.reason, p.text, True)
    if p.mode == Mode.RECOVER:
        return Outcome(State.APPLIED, p.reason, p.text)
    if p.mode == Mode.NOTIFY:
        if failed:
            return Outcome(State.FAILED, "NotifyFailed", f"{p.text}: {failed}")
        return Outcome(State.APPLIED, "Delivered", f"to {', '.join(p.message.channels if p.message else ())}: {p.text}")
    if p.mode == Mode.DRY_RUN:
        verdict = f"the server would reject it: {rejected}" if rejected else "the server-side dry-run accepted it"
        return Outcome(State.DRY_RUN, "DryRunRejected" if rejected else "DryRun", f"{p.text}; {verdict}", True)
    if rejected:
        assert p.change is not None
        return Outcome(
            State.REFUSED, "DryRunRejected", f"server-side dry-run rejected {p.change.summary}: {rejected}", True
        )
    if failed:
        return Outcome(State.FAILED, "PatchFailed", failed, True)
    return Outcome(State.APPLIED, p.reason, p.text)


def record(
    status: incident.IncidentStatus | None, p: Plan, out: Outcome, now: dt.datetime
) -> incident.IncidentStatus | None:
    """The status with the action's result written in, or None when this round already has it."""
    if status is None or status.phase is None or round_key(status) != p.round:
        return None  # the Incident moved on (a new round) since the plan: the next pass re-plans
    mine = [r for r in status.actions if r.occurrence == p.round and r.action == p.action.name]
    if mine and not (mine[-1].state == State.AWAITING_APPROVAL and out.state != State.AWAITING_APPROVAL):
        return None
    st = status.model_copy(deep=True)
    change = p.change
    patch = change.patch if change else ""
    if p.message is not None and not patch:
        patch = json.dumps({"channels": list(p.message.channels), "text": p.message.text})
    st.actions = [
        *st.actions,
        incident.ActionRecord(
            at=now,
            action=p.action.name,
            type=p.action.type.value,
            state=out.state,
            before=change.before[:1024] if change else "",
            after=change.after[:1024] if change else "",
            reason=f"{out.reason}: {out.text}"[:4096],
            patch=patch[:8192],
            occurrence=p.round,
        ),
    ][-ACTIONS_MAX:]
    if p.mode == Mode.NOTIFY:
        kind = "NotifyDelivered" if out.state == State.APPLIED else "NotifyFailed"
        lifecycle.add(st, now, kind, f"{p.action.name}: {out.text}")
    else:
        lifecycle.add(
            st, now, f"Action{out.state.value}", f"{p.action.name} ({p.action.type.value}) {out.reason}: {out.text}"
        )
    if out.state == State.APPLIED and p.mode != Mode.NOTIFY:
        if p.mode != Mode.RECOVER or st.guardrails.last_action_at is None:
            st.guardrails.last_action_at = now
            st.guardrails.action_times = [*st.guardrails.action_times, now][-TIMES_MAX:]
        if not out.needs_human and st.phase != Phase.RESOLVED:
            st.phase = Phase.MITIGATED
    if out.needs_human:
        lifecycle.needs_human(st, True, out.reason, out.text, now)
    elif out.state == State.APPLIED and p.mode != Mode.NOTIFY:
        lifecycle.needs_human(st, False, "Mitigated", out.text, now)
    return st
