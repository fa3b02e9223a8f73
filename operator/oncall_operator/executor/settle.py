"""A mitigated OOM Incident resolved once its workload has been quiet long enough; a stuck rollout pages.

:mod:`.open_incidents` calls :func:`settle` every ``ONCALL_RECHECK_SECONDS`` for
each Incident the OOM watch opened (label ``oncall.dev/trigger=OOMKilled``) while it is
mitigated (Mitigated, or Acknowledged after an applied change) or waits for a rollout a human was
paged about (:func:`oom_incident.settling`). Each call reads the workload; the domain's ``settle``
decides from the rollout state and the Incident's ``guardrails.healthySince`` and last action, so
the quiet period and the rollout deadline survive a restart of the operator: the clock is in the
Incident, not in this process.
"""

import collections.abc as cabc
import datetime as dt
from typing import Any

from oncall_operator.adapters import incidents, workloads
from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import lifecycle, oom_incident, workload
from oncall_operator.executor import context


def wants_settling(body: cabc.Mapping[str, Any]) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    return labels.get(oom_incident.TRIGGER_LABEL) == runbook.TriggerEvent.OOM_KILLED.value and oom_incident.settling(
        body
    )


async def settle(ctx: context.Context, body: cabc.Mapping[str, Any]) -> dict[str, Any] | None:
    """Resolve the Incident when its workload has been quiet; the Incident as written, or None."""
    if not wants_settling(body):
        return None
    inc = incident.Incident.model_validate(dict(body))
    target, meta = inc.spec.target, inc.metadata
    obj = await workloads.read(ctx.oom.api, target.kind, target.namespace, target.name)
    complete = obj is not None and workload.rollout_complete(obj)
    guard = runbook.Guardrails()
    found = ctx.indices.runbook_of(inc)
    if found is not None:
        guard = found[1].guardrails
    quiet, deadline = durations.parse(guard.quiet_period), durations.parse(guard.rollout_deadline)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if oom_incident.settle(inc.status, complete, quiet, now, deadline) is None:
        return None  # nothing to write on this look: no read of the latest Incident either

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        return oom_incident.settle(current.status, complete, quiet, now, deadline)

    written = await incidents.update_status_async(ctx.api, meta.namespace, meta.name, mutate, known=body)
    if written is None or not written.changed:
        return None
    after = written.incident.status
    if after and after.phase == incident.Phase.RESOLVED:
        text = f"no OOM kill for {durations.render(quiet)} after the rollout"
        ctx.events.emit(body, False, "Resolved", text)
    elif after and lifecycle.human_needed(after) and not (inc.status and lifecycle.human_needed(inc.status)):
        ctx.events.emit(body, True, "RolloutStuck", f"not rolled out {durations.render(deadline)} after the change")
    return written.raw
