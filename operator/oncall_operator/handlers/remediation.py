"""OOM Incidents: resolve a Mitigated one once its workload has been quiet long enough.

A timer on the Incidents the OOM watch opened (label ``oncall.dev/trigger=OOMKilled``) that acts
only while they are Mitigated. Each tick reads the workload; the domain's ``settle`` decides from
the rollout state and the Incident's ``guardrails.healthySince``, so the quiet period survives
a restart of the operator: the clock is in the Incident, not in this process.
"""

import asyncio
import datetime as dt
from typing import Any

import kopf

from oncall_operator.adapters import incidents, workloads
from oncall_operator.api import GROUP, VERSION, durations, incident, kinds, runbook
from oncall_operator.domain import oom_incident, workload
from oncall_operator.handlers import objects, settings


@kopf.timer(
    GROUP,
    VERSION,
    kinds.INCIDENT.plural,
    interval=settings.CONFIG.recheck_seconds,
    labels={oom_incident.TRIGGER_LABEL: runbook.TriggerEvent.OOM_KILLED.value},
)
async def oom_incident_settle(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    # the phase is checked here, not in a ``when=`` filter: Kopf adds and removes its finalizer
    # as a filter flips, which would be a write on every change of phase
    if (body.get("status") or {}).get("phase") != incident.Phase.MITIGATED.value:
        return
    inc = incident.Incident.model_validate(dict(body))
    target, meta = inc.spec.target, inc.metadata
    obj = await workloads.read(memo.oom.client(memo.kube), target.kind, target.namespace, target.name)
    complete = obj is not None and workload.rollout_complete(obj)
    quiet = durations.parse(runbook.Guardrails().quiet_period)
    ref = inc.spec.runbook_ref
    if ref is not None:
        found = objects.lookup(kwargs["runbook_specs"], ref.namespace or meta.namespace, [ref.name])
        if ref.name in found:
            quiet = durations.parse(found[ref.name].guardrails.quiet_period)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if oom_incident.settle(inc.status, complete, quiet, now) is None:
        return  # nothing to write on this tick: no read of the latest Incident either

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        return oom_incident.settle(current.status, complete, quiet, now)

    written = await asyncio.to_thread(incidents.update_status, memo.kube, meta.namespace, meta.name, mutate)
    if (
        written
        and written.changed
        and written.incident.status
        and written.incident.status.phase == incident.Phase.RESOLVED
    ):
        kopf.info(body, reason="Resolved", message=f"no OOM kill for {durations.render(quiet)} after the rollout")
