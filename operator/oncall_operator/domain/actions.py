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
import copy
import dataclasses
import datetime as dt
import enum
import json
from typing import Any

from oncall_operator.api import durations, incident, runbook, schedule
from oncall_operator.api import policy as policies
from oncall_operator.domain import changes, guardrails, lifecycle, maintenance, matching, tenancy, workload

ActionType = runbook.ActionType
State = incident.ActionState
Phase = incident.Phase
MARKER = "oncall.dev/remediated-action"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
NEEDS_HUMAN = lifecycle.NEEDS_HUMAN
ACTIONS_MAX, TIMES_MAX = 200, 100
ANNOTATIONS_TO_SKIP = frozenset(
    {  # kubectl's rollback.go: kept from the Deployment, never copied from the ReplicaSet
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
DOES_NOT_APPLY = frozenset(
    {
        "NotChangedRecently",
        "NoPreviousRevision",
        "RollbackUnsupported",
        "AlreadyAtPreviousRevision",
        "NoFlagLabel",
        "ConfigMapNotFound",
        "FlagAlreadySet",
        "NoTarget",
        "NotForAlerts",
    }
)
"""Refusal reasons that mean "this action does not fit the situation": the next action runs."""


class Mode(enum.StrEnum):
    REFUSE = "Refuse"
    AWAIT = "AwaitApproval"
    RECOVER = "Recover"  # the object already carries this action's marker: record it as applied
    DRY_RUN = "DryRun"
    APPLY = "Apply"
    NOTIFY = "Notify"


Change = changes.Change


@dataclasses.dataclass(frozen=True)
class Message:
    """A notify action's message and the policy channels it goes to."""

    channels: tuple[str, ...]
    text: str
    recipients: tuple[schedule.Member, ...] = ()
    """The team, with its own address: an Email channel mails it (besides the channel's fixed ``to``)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    action: runbook.Action
    round: str
    mode: Mode
    change: Change | None = None
    message: Message | None = None
    reason: str = ""
    text: str = ""
    needs_human: bool = False


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the executor read for one action; objects are plain dicts as the API server returns them."""

    now: dt.datetime
    target: cabc.Mapping[str, Any] | None = None
    replica_sets: tuple[cabc.Mapping[str, Any], ...] = ()
    controller_revisions: tuple[cabc.Mapping[str, Any], ...] = ()
    hpas: tuple[cabc.Mapping[str, Any], ...] = ()
    config_map: cabc.Mapping[str, Any] | None = None
    namespace_annotations: cabc.Mapping[str, str] = dataclasses.field(default_factory=dict)
    policy: policies.EscalationPolicySpec | None = None
    in_scope: bool = True
    dry_run: bool = False
    paused_by: maintenance.Mute | None = None
    muted_by: maintenance.Mute | None = None
    """The window muting the Incident's pages: it holds a ``notify`` too (recorded, not sent)."""


@dataclasses.dataclass(frozen=True)
class Due:
    action: runbook.Action
    round: str
    approval: incident.Approval | None = None


class _Stop(Exception):
    def __init__(self, plan: Plan) -> None:
        self.plan = plan


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


def flag_namespace(inc: incident.Incident) -> str:
    return inc.spec.target.namespace or inc.metadata.namespace


def plan(inc: incident.Incident, chosen: matching.Chosen, due: Due, facts: Facts) -> Plan:  # one action, as decided now
    try:
        return _plan(inc, chosen, due, facts)
    except _Stop as stop:
        return stop.plan


def _refuse(due: Due, reason: str, text: str, change: Change | None = None, human: bool = True) -> _Stop:
    if change is not None:
        text = f"{text}; recommended: {change.summary}"
    human = human and reason not in DOES_NOT_APPLY
    return _Stop(Plan(due.action, due.round, Mode.REFUSE, change, None, reason, text, human))


def _plan(inc: incident.Incident, chosen: matching.Chosen, due: Due, facts: Facts) -> Plan:
    action = due.action
    if action.type == ActionType.NOTIFY:
        message = _notify(inc, due, facts)
        if facts.muted_by is not None:  # held like a page: recorded, sent when the window ends
            held = facts.muted_by.text(f"notify to {', '.join(message.channels)}")
            raise _Stop(Plan(action, due.round, Mode.REFUSE, None, message, "Maintenance", held, False))
        if action.approval == runbook.Approval.REQUIRED and due.approval is None:
            text = f"action {action.name} needs approval: send to {', '.join(message.channels)}"
            raise _Stop(Plan(action, due.round, Mode.AWAIT, None, message, "ApprovalRequired", text, True))
        return Plan(action, due.round, Mode.NOTIFY, None, message, "Notify", message.text)
    if action.type in (ActionType.RAISE_MEMORY_LIMIT, ActionType.RESTART_ROLLOUT):
        raise _refuse(
            due,
            "NotForAlerts",
            f"{action.type.value} acts on an OOM kill's facts (the pod, its container and limit): the OOM watch "
            "runs it when the container is OOM-killed (trigger event OOMKilled), not on an alert",
        )
    outside = tenancy.target_refusal(inc.metadata.namespace, inc.spec.target.namespace)
    if outside is not None:
        raise _refuse(due, "TargetOutsideNamespace", outside)
    key = marker_value(inc, due.round, action.name)
    if action.type == ActionType.SET_FEATURE_FLAG:
        change, obj = _flag(inc, due, facts, key), facts.config_map
        where = f"the ConfigMap {change.name}"
    else:
        obj = facts.target
        change = _workload_change(inc, due, facts, key)
        where = f"the {change.kind}"
    assert obj is not None
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations")
    if (annotations or {}).get(MARKER) == key:
        text = f"{where} already carries this action's change ({MARKER}); recorded after an operator restart"
        return Plan(action, due.round, Mode.RECOVER, change, None, "Recovered", text)
    if action.approval == runbook.Approval.REQUIRED and due.approval is None:
        text = f"action {action.name} needs approval (kubectl oncall approve {inc.metadata.name} {action.name}): "
        raise _Stop(Plan(action, due.round, Mode.AWAIT, change, None, "ApprovalRequired", text + change.summary, True))
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
        raise _refuse(due, "OutOfScope", f"namespace {change.namespace} is outside the operator's watch scope")
    paused = change.kind != "ConfigMap" and bool((obj.get("spec") or {}).get("paused"))
    subject = guardrails.Subject(change.kind, where, meta.get("annotations"), meta.get("labels") or {}, paused)
    refused = guardrails.refusal(guard, inc.status, subject, facts.namespace_annotations, facts.now, facts.paused_by)
    if refused is not None:
        raise _refuse(due, refused.reason, refused.text, change, human=refused.human)


def _notify(inc: incident.Incident, due: Due, facts: Facts) -> Message:
    settings = due.action.notify
    assert settings is not None
    spec = facts.policy
    if spec is None:
        raise _refuse(due, "NoPolicy", "the Incident has no escalation policy, so no channel to notify")
    names = {c.name for c in spec.channels}
    if settings.channel:
        if settings.channel not in names:
            raise _refuse(due, "NoChannel", f"channel {settings.channel} is not in the escalation policy")
        channel = settings.channel
    team = next((t for t in spec.teams if t.name == settings.team), None)
    who = (schedule.Member(name=team.name, email=team.email),) if team is not None and team.email else ()
    if not settings.channel:
        mail = next((c.name for c in spec.channels if c.type == policies.ChannelType.EMAIL), None)
        fallback = mail if who else None  # a team with an address but no channel is mailed
        if team is None or not (team.channel or fallback):
            what = "is not in the escalation policy's teams" if team is None else "has no channel"
            raise _refuse(due, "NoChannel", f"team {settings.team} {what}")
        channel = team.channel or fallback or ""
        if channel not in names:
            raise _refuse(due, "NoChannel", f"team {settings.team}'s channel {team.channel} is not in the policy")
    text = settings.message or f"Runbook action {due.action.name} for incident {inc.metadata.name}: {inc.spec.title}"
    return Message((channel,), text, who)


def _flag(inc: incident.Incident, due: Due, facts: Facts, key: str) -> Change:
    settings = due.action.set_feature_flag
    assert settings is not None
    flag = settings.key
    if settings.key_from_label:
        flag = inc.spec.source.labels.get(settings.key_from_label) or None
        if flag is None:
            raise _refuse(due, "NoFlagLabel", f"the alert has no label {settings.key_from_label} naming a flag")
    if not flag:
        raise _refuse(due, "NoFlagLabel", "setFeatureFlag names neither key nor keyFromLabel")
    ns = flag_namespace(inc)
    cm = facts.config_map
    if cm is None:
        raise _refuse(due, "ConfigMapNotFound", f"ConfigMap {ns}/{settings.config_map} does not exist")
    meta = cm.get("metadata") or {}
    not_a_store = tenancy.flag_store_refusal(settings.config_map, meta.get("labels"))
    if not_a_store is not None:
        raise _refuse(due, "NotAFlagStore", not_a_store)
    data = cm.get("data")
    old = (data or {}).get(flag)
    if old == settings.value:
        raise _refuse(due, "FlagAlreadySet", f"flag {flag} in ConfigMap {settings.config_map} is {old!r} already")
    path = f"/data/{guardrails.escape(flag)}"
    ops: list[dict[str, Any]] = []
    if data is None:
        ops += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion", "")},
            {"op": "add", "path": "/data", "value": {flag: settings.value}},
        ]
    elif old is None:
        ops += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion", "")},
            {"op": "add", "path": path, "value": settings.value},
        ]
    else:
        ops += [
            {"op": "test", "path": path, "value": old},
            {"op": "replace", "path": path, "value": settings.value},
        ]
    store = f"/metadata/labels/{guardrails.escape(tenancy.FEATURE_FLAGS_LABEL)}"
    ops += [{"op": "test", "path": store, "value": "true"}, *_marker_ops(meta, key)]
    before, after = f"{flag}={old if old is not None else '(unset)'}", f"{flag}={settings.value}"
    summary = f"set flag {flag} in ConfigMap {ns}/{settings.config_map}: {before} -> {after}"
    return Change("ConfigMap", ns, settings.config_map, tuple(ops), before, after, summary)


def _workload_change(inc: incident.Incident, due: Due, facts: Facts, key: str) -> Change:
    target = inc.spec.target
    if target.kind not in workload.SUPPORTED or not target.name:
        what = f"{target.kind} {target.name}".strip() or "no workload"
        raise _refuse(
            due, "NoTarget", f"the alert names {what}; {due.action.type.value} needs a Deployment or StatefulSet"
        )
    obj = facts.target
    if obj is None:
        raise _refuse(due, "TargetNotFound", f"{target.kind} {target.namespace}/{target.name} does not exist")
    if due.action.type == ActionType.ROLLBACK:
        return _rollback(due, obj, facts, key)
    return _scale(due, obj, facts, key)


def _rollback(due: Due, obj: cabc.Mapping[str, Any], facts: Facts, key: str) -> Change:
    """``kubectl rollout undo``: the template of the ReplicaSet with the second-highest revision."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind, name, ns = obj.get("kind", ""), meta.get("name", ""), meta.get("namespace", "")
    rule = due.action.rollback or runbook.Rollback()
    if kind == "StatefulSet":
        return _rollback_statefulset(due, obj, facts, key, rule)
    if kind != "Deployment":
        raise _refuse(due, "RollbackUnsupported", f"rollback works on Deployments and StatefulSets, not on a {kind}")
    owned = sorted(
        ((revision(rs), rs) for rs in facts.replica_sets if _owned_by(rs, meta.get("uid", "")) and revision(rs) > 0),
        key=lambda pair: pair[0],
    )
    if len(owned) < 2:
        raise _refuse(
            due, "NoPreviousRevision", f"Deployment {name} has {len(owned)} revision(s): nothing to roll back to"
        )
    current_rev = int((meta.get("annotations") or {}).get(REVISION, "0") or 0) or owned[-1][0]
    current = next((rs for r, rs in owned if r == current_rev), owned[-1][1])
    created = _time(((current.get("metadata") or {}).get("creationTimestamp")) or "")
    within = durations.parse(rule.if_changed_within)
    if created is None or facts.now - created > within:
        when = created.isoformat() if created else "an unknown time"
        raise _refuse(
            due,
            "NotChangedRecently",
            f"Deployment {name}'s template last changed at {when} (revision {current_rev}), "
            f"not within {rule.if_changed_within}",
        )
    earlier = [(r, rs) for r, rs in owned if r < current_rev]
    if not earlier:
        raise _refuse(due, "NoPreviousRevision", f"no revision of Deployment {name} before {current_rev}")
    prev_rev, previous = earlier[-1]
    template = copy.deepcopy(dict((previous.get("spec") or {}).get("template") or {}))
    labels = (template.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    current_template = spec.get("template") or {}
    if _without_hash(template) == _without_hash(current_template):
        raise _refuse(
            due,
            "AlreadyAtPreviousRevision",
            f"Deployment {name}'s template already matches revision {prev_rev}",
        )
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in ANNOTATIONS_TO_SKIP}
    rs_annotations = (previous.get("metadata") or {}).get("annotations") or {}
    annotations.update({k: v for k, v in rs_annotations.items() if k not in ANNOTATIONS_TO_SKIP})
    annotations[MARKER] = key
    ops = (
        {"op": "test", "path": "/spec/template", "value": current_template},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    )
    before = f"revision {current_rev} ({_images(current_template)})"
    after = f"revision {prev_rev} ({_images(template)})"
    summary = f"roll back Deployment {name} from {before} to {after}"
    return Change(kind, ns, name, ops, before, after, summary, template)


def _rollback_statefulset(
    due: Due, obj: cabc.Mapping[str, Any], facts: Facts, key: str, rule: runbook.Rollback
) -> Change:
    """``kubectl rollout undo`` of a StatefulSet: the ControllerRevision with the second-highest revision.

    kubectl sends that revision's ``data`` (``spec.template`` with ``$patch: replace``) as a
    strategic merge patch; replacing ``/spec/template`` with the same template is the same change.
    """
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    name, ns = meta.get("name", ""), meta.get("namespace", "")
    owned = sorted(
        ((int(cr.get("revision") or 0), cr) for cr in facts.controller_revisions if _owned_by(cr, meta.get("uid", ""))),
        key=lambda pair: pair[0],
    )
    if len(owned) < 2:
        raise _refuse(
            due, "NoPreviousRevision", f"StatefulSet {name} has {len(owned)} revision(s): nothing to roll back to"
        )
    (prev_rev, previous), (current_rev, current) = owned[-2], owned[-1]
    created = _time(((current.get("metadata") or {}).get("creationTimestamp")) or "")
    if created is None or facts.now - created > durations.parse(rule.if_changed_within):
        when = created.isoformat() if created else "an unknown time"
        raise _refuse(
            due,
            "NotChangedRecently",
            f"StatefulSet {name}'s template last changed at {when} (revision {current_rev}), "
            f"not within {rule.if_changed_within}",
        )
    template = copy.deepcopy(dict(((previous.get("data") or {}).get("spec") or {}).get("template") or {}))
    template.pop("$patch", None)
    current_template = spec.get("template") or {}
    if not template:
        raise _refuse(due, "NoPreviousRevision", f"ControllerRevision of revision {prev_rev} holds no template")
    if template == current_template:
        raise _refuse(
            due, "AlreadyAtPreviousRevision", f"StatefulSet {name}'s template already matches revision {prev_rev}"
        )
    ops = (
        {"op": "test", "path": "/spec/template", "value": current_template},
        {"op": "replace", "path": "/spec/template", "value": template},
        *_marker_ops(meta, key),
    )
    before = f"revision {current_rev} ({_images(current_template)})"
    after = f"revision {prev_rev} ({_images(template)})"
    summary = f"roll back StatefulSet {name} from {before} to {after}"
    return Change("StatefulSet", ns, name, ops, before, after, summary, template)


def _scale(due: Due, obj: cabc.Mapping[str, Any], facts: Facts, key: str) -> Change:
    rule = due.action.scale
    assert rule is not None
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind, name, ns = obj.get("kind", ""), meta.get("name", ""), meta.get("namespace", "")
    hpa = next((h for h in facts.hpas if _targets(h, kind, name)), None)
    if hpa is not None:
        hpa_name = (hpa.get("metadata") or {}).get("name", "")
        raise _refuse(
            due, "HPAManaged", f"HorizontalPodAutoscaler {hpa_name} scales {kind} {name}: it would undo the change"
        )
    replicas = int(spec.get("replicas", 1))
    if replicas >= rule.max_replicas:
        raise _refuse(
            due, "AtMaxReplicas", f"{kind} {name} has {replicas} replicas, maxReplicas is {rule.max_replicas}"
        )
    new = min(replicas + rule.step, rule.max_replicas)
    ops = (
        {"op": "test", "path": "/spec/replicas", "value": replicas},
        {"op": "replace", "path": "/spec/replicas", "value": new},
        *_marker_ops(meta, key),
    )
    summary = f"scale {kind} {name} from {replicas} to {new} replicas (maxReplicas {rule.max_replicas})"
    return Change(kind, ns, name, ops, f"replicas={replicas}", f"replicas={new}", summary)


def revision(rs: cabc.Mapping[str, Any]) -> int:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "")
    return int(text) if str(text).isdigit() else 0


def _owned_by(obj: cabc.Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return bool(uid) and any(r.get("uid") == uid and r.get("controller") for r in refs)


def _targets(hpa: cabc.Mapping[str, Any], kind: str, name: str) -> bool:
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    return bool(ref.get("kind") == kind and ref.get("name") == name)


def _without_hash(template: cabc.Mapping[str, Any]) -> Any:
    out = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    return out


def _images(template: cabc.Mapping[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or ()
    return ", ".join(f"{c.get('name', '')}={c.get('image', '')}" for c in containers)[:400]


def _marker_ops(meta: cabc.Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return guardrails.marker_ops(meta.get("annotations"), meta.get("resourceVersion", ""), MARKER, key)


def _time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


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
