"""A Mitigated OOM Incident resolved once its workload has been quiet long enough.

:mod:`.open_incidents` calls :func:`settle` every ``ONCALL_RECHECK_SECONDS`` for
each Incident the OOM watch opened (label ``oncall.dev/trigger=OOMKilled``) while it is
Mitigated. Each call reads the workload; the domain's ``settle`` decides from the rollout state
and the Incident's ``guardrails.healthySince``, so the quiet period survives a restart of the
operator: the clock is in the Incident, not in this process.
"""

import collections.abc as cabc
import datetime as dt
from typing import Any

from oncall_operator.adapters import incidents, workloads
from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import oom_incident, workload
from oncall_operator.executor import context


def wants_settling(body: cabc.Mapping[str, Any]) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    phase = (body.get("status") or {}).get("phase")
    return (
        labels.get(oom_incident.TRIGGER_LABEL) == runbook.TriggerEvent.OOM_KILLED.value
        and phase == incident.Phase.MITIGATED.value
    )


async def settle(ctx: context.Context, body: cabc.Mapping[str, Any]) -> dict[str, Any] | None:
    """Resolve the Incident when its workload has been quiet; the Incident as written, or None."""
    if not wants_settling(body):
        return None
    inc = incident.Incident.model_validate(dict(body))
    target, meta = inc.spec.target, inc.metadata
    obj = await workloads.read(ctx.oom.api, target.kind, target.namespace, target.name)
    complete = obj is not None and workload.rollout_complete(obj)
    quiet = durations.parse(runbook.Guardrails().quiet_period)
    found = ctx.indices.runbook_of(inc)
    if found is not None:
        quiet = durations.parse(found[1].guardrails.quiet_period)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if oom_incident.settle(inc.status, complete, quiet, now) is None:
        return None  # nothing to write on this look: no read of the latest Incident either

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        return oom_incident.settle(current.status, complete, quiet, now)

    written = await incidents.update_status_async(ctx.api, meta.namespace, meta.name, mutate, known=body)
    if written is None or not written.changed:
        return None
    if written.incident.status and written.incident.status.phase == incident.Phase.RESOLVED:
        text = f"no OOM kill for {durations.render(quiet)} after the rollout"
        ctx.events.emit(body, False, "Resolved", text)
    return written.raw
