"""The ``Ready`` condition of every kind: check what the schema cannot, and say so where users look.

The checks are the domain's (:mod:`oncall_operator.domain.checks`); this module gathers what
they need from the indices (no API call) or, for a policy's Secrets, from the API, and writes
the result: for Schedules, Policies and Runbooks a merge patch of their status guarded by
resourceVersion (nobody else writes their status), for Incidents the same read-modify-write
loop as every other Incident status write. A flip of a condition is also an Event.
"""

import asyncio
import collections.abc as cabc
import datetime as dt
from typing import Any

from oncall_operator.adapters import incidents
from oncall_operator.api import base, incident, kinds, policy, runbook, schedule
from oncall_operator.api import heartbeat as hb
from oncall_operator.api import maintenance as mw
from oncall_operator.domain import checks, conditions, heartbeats, maintenance, schedules, tenancy
from oncall_operator.executor import context, indices


async def check_schedule(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    """Ready, and who is on call now, the next handoff and the coverage of the next 14 days."""
    spec = schedule.OnCallScheduleSpec.model_validate(dict(body["spec"]))
    verdict = checks.check_schedule(spec)
    if not verdict.ok:  # an unknown zone: nobody can be resolved
        await _write(ctx, kinds.SCHEDULE, body, verdict)
        return
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    found = schedules.status(spec, now)
    fields = found.wire()
    fields.pop("conditions", None)
    coverage = schedules.coverage_verdict(found.gaps)
    await _write(ctx, kinds.SCHEDULE, body, verdict, {"Covered": coverage}, fields)


async def check_policy(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    spec = policy.EscalationPolicySpec.model_validate(dict(body["spec"]))
    namespace = body["metadata"]["namespace"]
    found = indices.lookup(ctx.indices.schedules, namespace, _schedule_refs(spec))
    secrets: dict[str, frozenset[str]] = {}
    forbidden: set[str] = set()
    not_opted_in: set[str] = set()
    for name in checks.secret_names(spec, found):
        try:
            seen = await asyncio.to_thread(ctx.kube.secret_keys, namespace, name)
        except PermissionError:
            forbidden.add(name)
            continue
        if seen is not None:
            secrets[name] = seen[0]
            if tenancy.secret_refusal(name, seen[1]) is not None:
                not_opted_in.add(name)
    verdict = checks.check_policy(
        spec, found, secrets, frozenset(forbidden), frozenset(not_opted_in), trust=ctx.config.trust
    )
    await _write(ctx, kinds.POLICY, body, verdict)


async def check_runbook(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    spec = runbook.RunbookSpec.model_validate(dict(body["spec"]))
    refs = [spec.escalation_policy_ref.name] if spec.escalation_policy_ref else []
    found = indices.lookup(ctx.indices.policies, body["metadata"]["namespace"], refs)
    await _write(ctx, kinds.RUNBOOK, body, checks.check_runbook(spec, found))


async def check_incident(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    """An opened Incident's Ready: whether what it names exists."""
    meta = body["metadata"]
    spec = incident.IncidentSpec.model_validate(dict(body["spec"]))
    verdict = ctx.indices.verdict(spec, meta["namespace"])
    if conditions.ready_unchanged(body.get("status") or {}, verdict, meta.get("generation")):
        return  # most events of an Incident: its Ready already says so (no parse, no write)
    old = [base.Condition.model_validate(c) for c in (body.get("status") or {}).get("conditions") or []]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        status = current.status or incident.IncidentStatus()
        generation = current.metadata.generation
        new = conditions.ready(list(status.conditions), verdict, generation, now)
        if conditions.same(status.conditions, new) and status.observed_generation == generation:
            return None
        return status.model_copy(update={"conditions": new, "observed_generation": generation})

    written = await incidents.update_status_async(ctx.api, meta["namespace"], meta["name"], mutate, known=body)
    if written is not None and written.changed:
        _announce(ctx, body, old, {conditions.READY: verdict})


def stamp(at: dt.datetime) -> str:
    """An instant as the API server writes one (RFC 3339, UTC, seconds)."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def check_window(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    """A MaintenanceWindow's Ready, whether it is open now, and its current or next opening."""
    meta = body["metadata"]
    window = maintenance.Window(
        meta["namespace"], meta["name"], mw.MaintenanceWindowSpec.model_validate(dict(body["spec"]))
    )
    active, opening = maintenance.status(window.spec, dt.datetime.now(dt.UTC))
    fields = {
        "active": active,
        "nextStart": stamp(opening.start) if opening else None,
        "nextEnd": stamp(opening.end) if opening else None,
    }
    await _write(ctx, kinds.MAINTENANCE, body, maintenance.check(window, ctx.config.namespace), None, fields)


async def check_heartbeat(ctx: context.Context, body: cabc.Mapping[str, Any], fields: cabc.Mapping[str, Any]) -> None:
    """A Heartbeat's Ready (its policy exists), with the state its tick found."""
    spec = hb.HeartbeatSpec.model_validate(dict(body["spec"]))
    ref = spec.escalation_policy_ref.name
    found = indices.lookup(ctx.indices.policies, body["metadata"]["namespace"], [ref])
    await _write(ctx, kinds.HEARTBEAT, body, heartbeats.check(spec, found), None, fields)


def _schedule_refs(spec: policy.EscalationPolicySpec) -> set[str]:
    targets = [t for level in spec.levels for t in level.targets] + [r.target for r in spec.routes]
    return {t.schedule.name for t in targets if t.schedule is not None}


async def _write(
    ctx: context.Context,
    kind: kinds.Kind,
    body: cabc.Mapping[str, Any],
    verdict: conditions.Verdict,
    more: cabc.Mapping[str, conditions.Verdict] | None = None,
    fields: cabc.Mapping[str, Any] | None = None,
) -> None:
    """Write ``Ready`` (and ``more`` conditions, and status ``fields``) when any changed; Event on a flip."""
    status = body.get("status") or {}
    old = [base.Condition.model_validate(c) for c in status.get("conditions") or []]
    generation = body["metadata"].get("generation")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    new = conditions.ready(old, verdict, generation, now)
    for type_, extra in (more or {}).items():
        new = conditions.put(new, type_, _status_of(extra), extra.reason, extra.message, generation, now)
    unchanged = all(status.get(k) == v for k, v in (fields or {}).items())
    if conditions.same(old, new) and status.get("observedGeneration") == generation and unchanged:
        return
    meta = body["metadata"]
    patch = {**(fields or {}), "observedGeneration": generation, "conditions": [c.wire() for c in new]}
    written = await asyncio.to_thread(
        ctx.kube.patch_status, kind.plural, meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
    )
    if written:  # else changed meanwhile: the next event (or recheck) decides on the newer object
        _announce(ctx, body, old, {conditions.READY: verdict, **(more or {})})


def _announce(
    ctx: context.Context,
    body: cabc.Mapping[str, Any],
    old: cabc.Sequence[base.Condition],
    verdicts: cabc.Mapping[str, conditions.Verdict],
) -> None:
    for type_, verdict in verdicts.items():
        was = next((c.status for c in old if c.type == type_), None)
        if was != _status_of(verdict):
            ctx.events.emit(body, not verdict.ok, verdict.reason, verdict.message)


def _status_of(verdict: conditions.Verdict) -> base.ConditionStatus:
    return base.ConditionStatus.TRUE if verdict.ok else base.ConditionStatus.FALSE
