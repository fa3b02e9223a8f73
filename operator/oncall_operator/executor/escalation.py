"""The page that is due for one open Incident: ask the pure engine, claim it on the Incident, send it, record it.

:mod:`.open_incidents` calls :func:`escalate` on every change of an Incident
and again when its next step is due. When something is due it first records the step as
Pending on the Incident (a write guarded by resourceVersion, so of two operators only one wins
the step), then sends, then records Delivered or Failed. Everything needed to resume is in the
Incident, so a restarted or newly elected operator continues where the last one stopped.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import functools
import logging
from typing import Any

from oncall_operator.adapters import incidents, metrics
from oncall_operator.api import incident, policy, schedule
from oncall_operator.domain import delivery, escalation, maintenance, schedules
from oncall_operator.executor import context, delivering, indices, muting, page_budget

log = logging.getLogger(__name__)


def resolver(namespace: str, spec: policy.EscalationPolicySpec, index: indices.SpecIndex) -> escalation.Resolver:
    """Targets -> people, from the schedules (and their members' addresses) in the policy's namespace."""
    names = {t.schedule.name for lv in spec.levels for t in lv.targets if t.schedule} | {
        r.target.schedule.name for r in spec.routes if r.target.schedule
    }
    found: dict[str, schedule.OnCallScheduleSpec] = indices.lookup(index, namespace, names)
    members = {m.name: m for s in found.values() for m in s.members}

    def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
        if target.schedule is not None:
            sched = found.get(target.schedule.name)
            people = schedules.on_call(sched, at).get(target.schedule.role, []) if sched else []
            return [members.get(p) or escalation.Recipient(name=p) for p in people]
        if target.user is not None:
            return [members.get(target.user) or escalation.Recipient(name=target.user)]
        team = next((t for t in spec.teams if t.name == target.team), None)
        return [escalation.Recipient(name=target.team or "team", email=team.email if team else None)]

    return resolve


@dataclasses.dataclass(frozen=True)
class Looked:
    """What one look at an Incident left: the Incident as last written (None: no write), and when to look again."""

    raw: dict[str, Any] | None
    wake_at: dt.datetime | None


async def escalate(ctx: context.Context, body: cabc.Mapping[str, Any]) -> Looked:
    """Send what is due for one Incident, claimed in its status first; no API call when nothing is."""
    inc = incident.Incident.model_validate(dict(body))
    if inc.status is None or inc.status.phase is None:
        return Looked(None, None)
    found = ctx.indices.policy_for(inc)
    if found is None:
        return Looked(None, None)
    namespace, spec = found
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    resolve = resolver(namespace, spec, ctx.indices.schedules)
    me = delivering.claimant()
    budget = functools.partial(page_budget.budgeted, ctx.indices.pages, ctx.indices.runbook_policy, spec, body)
    first = budget(inc.status, escalation.decide(spec, inc, now, resolve, me), now, resolve, me)
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    mute = await muting.pages_muted(ctx, inc, now)  # the target workload's labels too, when a window selects by them
    if mute is not None and any(s.kind in page_budget.MUTED_KINDS for s in first.sends):
        held = await incidents.update_status_async(  # pages wait for the window's end, said once on the Incident
            ctx.api, ns, name, lambda cur: cur.status and maintenance.hold(cur.status, mute, now), known=body
        )
        return Looked(held.raw if held and held.changed else None, mute.until)
    ended = mute is None and maintenance.in_maintenance(inc.status)
    marked = page_budget.marked(inc.status, first.status)  # held pages counted in a summary sent elsewhere
    if not first.sends and inc.status.escalation.started_at is not None and not ended and not marked:
        return Looked(None, first.wake_at)  # nothing due: no API call at all
    claimed: list[escalation.Send] = []
    wake: list[dt.datetime | None] = [first.wake_at]

    def claim(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or current.status.phase is None:
            return None
        before = current.status
        if mute is None:  # a window just ended: the escalation starts again from level 1
            current = current.model_copy(update={"status": maintenance.resume(before, now)})
        decision = budget(before, escalation.decide(spec, current, now, resolve, me), now, resolve, me, True)
        claimed[:], wake[0] = decision.sends, decision.wake_at
        return decision.status if decision.status != before else None

    written = await incidents.update_status_async(ctx.api, ns, name, claim, known=body)
    if written is None or not claimed:
        return Looked(written.raw if written and written.changed else None, wake[0])
    log.info("Incident %s/%s: claimed %s", ns, name, ", ".join(f"{s.key} ({', '.join(s.channels)})" for s in claimed))

    results = await delivering.deliver(ctx, claimed, written.incident, spec, namespace)
    metrics.record_escalation(claimed, results, spec)
    window = escalation.retry_window(spec, inc.spec.severity.value)
    done = dt.datetime.now(dt.UTC).replace(microsecond=0)
    recorded = await incidents.update_status_async(
        ctx.api, ns, name, delivering.record(results, done, window), known=written.raw
    )
    for send in claimed:
        failed = [r for r in results if r.key == send.key and not r.ok]
        ctx.events.emit(body, bool(failed), send.kind.title().replace("-", ""), send.text)
    last = recorded or written
    retry = delivery.next_retry(last.incident.status.escalation.notifications) if last.incident.status else None
    return Looked(last.raw, min((t for t in (wake[0], retry) if t is not None), default=None))
