"""A runbook's actions on an alert Incident: read, plan, dry-run, write, record; one action per pass.

For one Incident event: under the target workload's lock (the same locks as the OOM
remediation, so an OOM raise and a rollback of one Deployment never interleave), read the
latest Incident and ask :func:`domain.actions.next_action` what is due in this round; read only
what that action needs (the workload and its ReplicaSets or ControllerRevisions for a rollback,
the HPAs for a scale, the flag ConfigMap, the namespace's annotations); ``plan``; then the
server-side dry-run of the exact patch (and of a pod of a rolled-back template, which
LimitRange, quota and webhooks judge), the patch, the Incident write, the metric and the
Events (the dry-runs, the patch and the retries are :mod:`.patching`'s, as for OOM kills). A
``notify`` is claimed on the Incident as a Pending notification first and sent through the
escalation's own dispatcher (:mod:`.delivering`) to the policy's channel, so it is never lost.

One action per pass: the Incident write is itself an event, and the next pass takes the next
action, so every step is on the Incident before the following one starts, and a restarted
operator resumes from the Incident alone. A ``test`` operation that fails (the object changed
between the read and the patch) re-reads and re-plans.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import hashlib
import logging
from typing import Any

from oncall_operator.adapters import incidents, metrics, workloads
from oncall_operator.api import base, incident, policy, runbook
from oncall_operator.api.maintenance import Mutes
from oncall_operator.domain import actions, delivery, escalation, maintenance, matching, tenancy, workload
from oncall_operator.executor import context, delivering, muting, patching

log = logging.getLogger(__name__)
ACTION_NOTIFY = "action-notify"
"""A runbook's message, in the notifications: not a page, so acknowledgements and resolutions do not follow it."""
ActionType = runbook.ActionType


@dataclasses.dataclass(frozen=True)
class Policy:
    namespace: str
    spec: policy.EscalationPolicySpec


def wants_actions(spec: cabc.Mapping[str, Any], status: cabc.Mapping[str, Any]) -> bool:
    """An open alert Incident with a Runbook: OOM Incidents are left to the OOM flow (it has the kill's facts)."""
    phase = status.get("phase")
    source = (spec.get("source") or {}).get("type")
    return (
        bool(spec.get("runbookRef"))
        and bool(phase)
        and phase != incident.Phase.RESOLVED.value
        and (source != incident.SourceType.OOM_KILL.value)
    )


async def run_due(ctx: context.Context, body: cabc.Mapping[str, Any]) -> actions.Plan | None:
    """The Incident's runbook (from the indices) and its policy, then :func:`run`.

    Only the runbook's reference is read before the runbook is known to have actions: most have
    none, and validating the whole Incident on each of its events was 2 % of a storm's CPU (issue 18).
    """
    named = (body.get("spec") or {}).get("runbookRef")
    ref = base.ObjectRef.model_validate(named) if named else None
    rb = ctx.indices.runbook_for(body["metadata"]["namespace"], ref)  # None for another tenant's: see its Ready
    if rb is None or not rb[1].actions:
        return None
    inc = incident.Incident.model_validate(dict(body))
    if inc.spec.runbook_ref is None:
        return None
    found = ctx.indices.policy_for(inc)
    chosen = matching.Chosen(rb[0], inc.spec.runbook_ref.name, rb[1])
    return await run(ctx, body, chosen, Policy(*found) if found else None, inc)


async def run(
    ctx: context.Context,
    body: cabc.Mapping[str, Any],
    chosen: matching.Chosen,
    found: Policy | None,
    parsed: incident.Incident | None = None,
) -> actions.Plan | None:
    """Take the Incident's next due action, if any; returns the plan run (``parsed``: ``body``, validated)."""
    inc = parsed or incident.Incident.model_validate(dict(body))
    if actions.next_action(chosen.spec, inc.status) is None:
        return None  # nothing due: no API call at all
    t = inc.spec.target
    key = f"{t.namespace}/{t.kind}/{t.name}" if t.name else f"incident/{inc.metadata.namespace}/{inc.metadata.name}"

    async def attempt(n: int) -> actions.Plan | None:
        async with ctx.locks(key):
            return await _once(ctx, inc, chosen, found, last=n >= 2)

    what = f"runbook action for {inc.metadata.namespace}/{inc.metadata.name}"
    return await patching.retrying(attempt, what)


async def _once(
    ctx: context.Context,
    seen: incident.Incident,
    chosen: matching.Chosen,
    found: Policy | None,
    last: bool,
) -> actions.Plan | None:
    api = ctx.api
    ns, name = seen.metadata.namespace, seen.metadata.name
    raw = await workloads.incident(api, ns, name)
    if raw is None:
        return None
    inc = incident.Incident.model_validate(raw)
    due = actions.next_action(chosen.spec, inc.status)
    if due is None:
        return None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    facts = await _facts(ctx, inc, due.action, found, now)
    target = facts.config_map if due.action.type == ActionType.SET_FEATURE_FLAG else facts.target
    meta = (target or {}).get("metadata") or {}
    where, workload_labels = meta.get("namespace") or inc.spec.target.namespace or ns, meta.get("labels")
    mute = ctx.indices.muted(Mutes.ACTIONS, where, inc.spec.source.labels, workload_labels, ctx.config.namespace, now)
    muted = await muting.pages_muted(ctx, inc, now) if due.action.type == ActionType.NOTIFY else None
    facts = dataclasses.replace(facts, paused_by=mute, muted_by=muted)
    p = actions.plan(inc, chosen, due, facts)
    rejected = failed = None
    obj = facts.config_map if due.action.type == ActionType.SET_FEATURE_FLAG else facts.target
    if p.mode in (actions.Mode.APPLY, actions.Mode.DRY_RUN):
        c = p.change
        assert c is not None
        probe = None
        if c.template is not None and facts.target is not None:
            probe = workload.probe_pod(workload.read(facts.target), c.template)
        rejected = await patching.dry_runs(api, c.kind, c.namespace, c.name, list(c.ops), probe, last)
        if p.mode == actions.Mode.APPLY and rejected is None:
            failed, _ = await patching.patch(api, c.kind, c.namespace, c.name, list(c.ops), last)
    elif p.mode == actions.Mode.NOTIFY:
        assert p.message is not None and found is not None
        failed = await _notify(ctx, inc, p, found, now)
    out = actions.outcome(p, rejected, failed)

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        st = actions.record(current.status, p, out, now)
        if st is not None and muted is not None and p.message is not None and p.mode == actions.Mode.REFUSE:
            send = _send(p)  # held by the window muting pages: sent when it ends
            st = maintenance.hold_message(st, muted, send.key, send.kind, send.channels, send.text[:1024], now)
        return st

    written = await incidents.update_status_async(api, ns, name, mutate, known=raw)
    log.info("runbook %s action %s for %s/%s: %s %s", chosen.name, due.action.name, ns, name, out.state, out.text)
    if written is not None and written.changed:
        metrics.record_remediation(due.action.type.value, out.state.value)
        _explain(ctx, written.incident, obj, p, out)
    return p


async def _none() -> None:
    return None


async def _nothing() -> list[dict[str, Any]]:
    return []


async def _facts(
    ctx: context.Context, inc: incident.Incident, action: runbook.Action, found: Policy | None, now: dt.datetime
) -> actions.Facts:
    api, opts = ctx.api, ctx.config
    t = inc.spec.target
    if action.type == ActionType.NOTIFY:
        return actions.Facts(now=now, policy=found.spec if found else None)
    if tenancy.target_refusal(inc.metadata.namespace, t.namespace) is not None:
        return actions.Facts(now=now, dry_run=opts.dry_run)  # refused by the plan: nothing of B is even read
    if action.type == ActionType.SET_FEATURE_FLAG:
        settings = action.set_feature_flag
        assert settings is not None
        where = actions.flag_namespace(inc)
        cm, ns_annotations = await asyncio.gather(
            workloads.read(api, "ConfigMap", where, settings.config_map),
            workloads.namespace_annotations(api, where),
        )
        return actions.Facts(
            now=now,
            config_map=cm,
            namespace_annotations=ns_annotations,
            in_scope=matching.in_scope(where, opts.watch_namespaces),
            dry_run=opts.dry_run,
        )
    if action.type not in (ActionType.ROLLBACK, ActionType.SCALE) or t.kind not in workload.SUPPORTED or not t.name:
        return actions.Facts(now=now, dry_run=opts.dry_run)
    history = "ReplicaSet" if t.kind == "Deployment" else "ControllerRevision"
    obj, ns_annotations, revisions, hpas = await asyncio.gather(
        workloads.read(api, t.kind, t.namespace, t.name),
        workloads.namespace_annotations(api, t.namespace),
        workloads.list_items(api, history, t.namespace) if action.type == ActionType.ROLLBACK else _nothing(),
        workloads.list_items(api, "HorizontalPodAutoscaler", t.namespace)
        if action.type == ActionType.SCALE
        else _nothing(),
    )
    return actions.Facts(
        now=now,
        target=obj,
        replica_sets=tuple(revisions) if history == "ReplicaSet" else (),
        controller_revisions=tuple(revisions) if history == "ControllerRevision" else (),
        hpas=tuple(hpas),
        namespace_annotations=ns_annotations,
        in_scope=matching.in_scope(t.namespace, opts.watch_namespaces),
        dry_run=opts.dry_run,
    )


async def _notify(
    ctx: context.Context, inc: incident.Incident, p: actions.Plan, found: Policy, now: dt.datetime
) -> str | None:
    """Claim the message on the Incident (Pending, like a page), send it, record it; the failure's words, or None.

    Recorded before it is sent: an operator killed in between leaves a Pending notification,
    which the escalation sends again under the same delivery id. A transient failure stays
    Pending and is retried the same way, so only a permanent one fails the action.
    """
    ns, name = inc.metadata.namespace, inc.metadata.name
    send = _send(p)

    def claim(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or any(n.key == send.key for n in current.status.escalation.notifications):
            return None  # claimed already: whoever claimed it sends it, or the escalation sends it again
        status = incident.IncidentStatus.model_validate(current.status.model_dump())
        for channel in send.channels:
            note = incident.Notification(
                key=send.key, at=now, level=0, channel=channel, kind=ACTION_NOTIFY, result="", text=send.text[:1024]
            )
            delivery.claim(note, now, delivering.ME)
            status.escalation.notifications.append(note)
        return status

    written = await incidents.update_status_async(ctx.api, ns, name, claim)
    if written is None or not written.changed:
        return None
    results = await delivering.deliver(ctx, [send], written.incident, found.spec, found.namespace)
    metrics.record_escalation([send], results, found.spec)  # counts the deliveries; a notify is no page
    window = escalation.retry_window(found.spec, inc.spec.severity.value)
    done = dt.datetime.now(dt.UTC).replace(microsecond=0)
    await incidents.update_status_async(ctx.api, ns, name, delivering.record(results, done, window))
    bad = [r.detail for r in results if not r.ok and not r.retryable]
    return "; ".join(bad) if bad or not results else None


def _send(p: actions.Plan) -> escalation.Send:
    """A notify's message as a step: one key per round and action, so it is claimed and sent once."""
    assert p.message is not None
    digest = hashlib.sha256(f"{p.round}/{p.action.name}".encode()).hexdigest()[:16]
    key = f"action/{p.action.name[:63]}/{digest}"
    message = p.message
    return escalation.Send(key, ACTION_NOTIFY, 0, 0, message.channels, message.recipients, message.text)


def _explain(
    ctx: context.Context,
    inc: incident.Incident,
    obj: cabc.Mapping[str, Any] | None,
    p: actions.Plan,
    out: actions.Outcome,
) -> None:
    state = out.state
    if state == incident.ActionState.APPLIED:
        reason = {
            ActionType.ROLLBACK: "RolledBack",
            ActionType.SCALE: "ScaledUp",
            ActionType.SET_FEATURE_FLAG: "FeatureFlagSet",
            ActionType.NOTIFY: "Notified",
        }.get(p.action.type, "ActionApplied")
    else:
        reason = f"Remediation{state.value}"
    warning = out.needs_human or state in (incident.ActionState.REFUSED, incident.ActionState.FAILED)
    text = f"runbook action {p.action.name} for incident {inc.metadata.name}: {out.reason}: {out.text}"
    subjects: list[cabc.Mapping[str, Any]] = []
    if obj is not None and p.action.type != ActionType.NOTIFY:
        subjects.append(obj)
    subjects.append(patching.incident_ref(inc.metadata.namespace, inc.metadata.name, inc.metadata.uid))
    patching.explain(ctx.events, subjects, warning, reason, text)
