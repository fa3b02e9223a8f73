"""Drive one open Incident's escalation: ask the pure engine what is due, claim it, send it.

:mod:`~oncall_operator.handlers.board` calls :func:`escalate` on every change of an Incident
and again when its next step is due. When something is due it first records the step as
Pending on the Incident (a write guarded by resourceVersion, so of two operators only one wins
the step), then sends, then records Delivered or Failed. Everything needed to resume is in the
Incident, so a restarted or newly elected operator continues where the last one stopped.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import logging
from typing import Any

import aiohttp
import kopf

from oncall_operator.adapters import incidents, metrics, workloads
from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import incident, policy, schedule
from oncall_operator.domain import escalation, schedules
from oncall_operator.handlers import objects

log = logging.getLogger(__name__)


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


@dataclasses.dataclass(frozen=True)
class Looked:
    """What one look at an Incident left: the Incident as last written (None: no write), and when to look again."""

    raw: dict[str, Any] | None
    wake_at: dt.datetime | None


async def escalate(body: cabc.Mapping[str, Any], memo: Any, indices: objects.Indices) -> Looked:
    """Send what is due for one Incident, claimed in its status first; no API call when nothing is."""
    inc = incident.Incident.model_validate(dict(body))
    if inc.status is None or inc.status.phase is None:
        return Looked(None, None)
    found = policy_for(inc, indices.policies, indices.runbooks)
    if found is None:
        return Looked(None, None)
    namespace, spec = found
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    resolve = resolver(namespace, spec, indices.schedules)
    first = escalation.decide(spec, inc, now, resolve)
    if not first.sends and inc.status.escalation.started_at is not None:
        return Looked(None, first.wake_at)  # nothing due: no API call at all
    claimed: list[escalation.Send] = []
    wake: list[dt.datetime | None] = [first.wake_at]

    def claim(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or current.status.phase is None:
            return None
        decision = escalation.decide(spec, current, now, resolve)
        claimed[:], wake[0] = decision.sends, decision.wake_at
        return decision.status if decision.status != current.status else None

    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    written = await incidents.update_status_async(memo.api, ns, name, claim, known=body)
    if written is None or not claimed:
        return Looked(written.raw if written and written.changed else None, wake[0])
    log.info("Incident %s/%s: claimed %s", ns, name, ", ".join(f"{s.key} ({', '.join(s.channels)})" for s in claimed))

    async def secret(channel: policy.Channel) -> str | None:
        ref = channel.secret_ref
        assert ref is not None
        value: str | None = await asyncio.to_thread(memo.secrets.value, namespace, ref.name, ref.key)
        return value

    results = await dispatch.deliver(claimed, written.incident, spec, secret, memo.http, now)
    metrics.record_escalation(claimed, results, spec)
    recorded = await incidents.update_status_async(memo.api, ns, name, _record(results, now), known=written.raw)
    for send in claimed:
        failed = [r for r in results if r.key == send.key and not r.ok]
        workloads.post_event(dict(body), bool(failed), send.kind.title().replace("-", ""), send.text[:1000])
    return Looked((recorded or written).raw, wake[0])


def is_open(status: cabc.Mapping[str, Any]) -> bool:
    """Opened, and not Resolved with everybody told: the escalation may still have something to send."""
    phase = status.get("phase")
    return bool(phase) and not (phase == incident.Phase.RESOLVED.value and status.get("escalation", {}).get("closed"))
