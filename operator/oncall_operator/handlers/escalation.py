"""Drive each open Incident's escalation: a tick per Incident, the decisions in its status.

A Kopf timer looks at every Incident every ``ONCALL_TICK_SECONDS``. It asks the pure engine
what is due; when something is, it first records the step as Pending on the Incident (a
write guarded by resourceVersion, so of two operators only one wins the step), then sends,
then records Delivered or Failed. Everything needed to resume is in the Incident, so a
restarted or newly elected operator continues where the last one stopped.
"""

import asyncio
import collections.abc as cabc
import datetime as dt
from typing import Any

import aiohttp
import kopf

from oncall_operator.adapters import incidents, metrics
from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import GROUP, VERSION, incident, kinds, policy, schedule
from oncall_operator.domain import escalation, schedules
from oncall_operator.handlers import objects, settings

TICK = settings.CONFIG.tick_seconds


@kopf.on.startup()
async def open_http(memo: Any, **_: Any) -> None:
    memo.http = aiohttp.ClientSession()


@kopf.on.cleanup()
async def close_http(memo: Any, **_: Any) -> None:
    await memo.http.close()


def policy_for(
    inc: incident.Incident, policies: objects.SpecIndex, runbooks: objects.SpecIndex
) -> tuple[str, Any] | None:
    """(namespace, spec) of the Incident's escalation policy: its own ref, else its runbook's."""
    ns = inc.metadata.namespace
    ref: Any = inc.spec.escalation_policy_ref
    if ref is None and inc.spec.runbook_ref is not None:
        rb_ref: Any = inc.spec.runbook_ref
        rb_ns = getattr(rb_ref, "namespace", None) or ns
        found = objects.lookup(runbooks, rb_ns, [rb_ref.name]).get(rb_ref.name)
        if found is None or found.escalation_policy_ref is None:
            return None
        ref, ns = found.escalation_policy_ref, rb_ns
    if ref is None:
        return None
    ns = getattr(ref, "namespace", None) or ns
    spec = objects.lookup(policies, ns, [ref.name]).get(ref.name)
    return None if spec is None else (ns, spec)


def resolver(namespace: str, spec: policy.EscalationPolicySpec, index: objects.SpecIndex) -> escalation.Resolver:
    """Targets -> people, from the schedules (and their members' addresses) in the policy's namespace."""
    names = {t.schedule.name for lv in spec.levels for t in lv.targets if t.schedule} | {
        r.target.schedule.name for r in spec.routes if r.target.schedule
    }
    found: dict[str, schedule.OnCallScheduleSpec] = objects.lookup(index, namespace, names)
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


def _record(results: cabc.Sequence[dispatch.Result], now: dt.datetime) -> incidents.Mutation:
    outcome = {(r.key, r.channel): r for r in results}

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None:
            return None
        status = current.status.model_copy(deep=True)
        for n in status.escalation.notifications:
            r = outcome.get((n.key, n.channel))
            if r is not None and n.result == "Pending":
                n.result, n.message = ("Delivered" if r.ok else "Failed"), r.detail[:2048]
                if not r.ok:
                    status.timeline.append(
                        incident.TimelineEntry(at=now, type="NotificationFailed", message=r.detail[:4096])
                    )
        return status

    return mutate


async def escalate(
    body: kopf.Body,
    memo: Any,
    policies: objects.SpecIndex,
    runbooks: objects.SpecIndex,
    schedule_index: objects.SpecIndex,
) -> None:
    inc = incident.Incident.model_validate(dict(body))
    if inc.status is None or inc.status.phase is None:
        return
    found = policy_for(inc, policies, runbooks)
    if found is None:
        return
    namespace, spec = found
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    resolve = resolver(namespace, spec, schedule_index)
    if not escalation.decide(spec, inc, now, resolve).sends and inc.status.escalation.started_at is not None:
        return  # nothing due: no API call at all
    claimed: list[escalation.Send] = []

    def claim(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or current.status.phase is None:
            return None
        decision = escalation.decide(spec, current, now, resolve)
        claimed[:] = decision.sends
        return decision.status if decision.status != current.status else None

    meta = body["metadata"]
    written = await asyncio.to_thread(incidents.update_status, memo.kube, meta["namespace"], meta["name"], claim)
    if written is None or not claimed:
        return

    async def secret(channel: policy.Channel) -> str | None:
        ref = channel.secret_ref
        assert ref is not None
        value: str | None = await asyncio.to_thread(memo.kube.secret_value, namespace, ref.name, ref.key)
        return value

    results = await dispatch.deliver(claimed, written.incident, spec, secret, memo.http, now)
    metrics.record_escalation(claimed, results, spec)
    await asyncio.to_thread(incidents.update_status, memo.kube, meta["namespace"], meta["name"], _record(results, now))
    for send in claimed:
        failed = [r for r in results if r.key == send.key and not r.ok]
        (kopf.warn if failed else kopf.info)(body, reason=send.kind.title().replace("-", ""), message=send.text[:1000])


def _open(status: kopf.Status, **_: Any) -> bool:
    phase = status.get("phase")
    return bool(phase) and not (phase == incident.Phase.RESOLVED.value and status.get("escalation", {}).get("closed"))


@kopf.timer(GROUP, VERSION, kinds.INCIDENT.plural, interval=TICK, when=_open)
async def incident_tick(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    await escalate(body, memo, kwargs["policy_specs"], kwargs["runbook_specs"], kwargs["schedule_specs"])
