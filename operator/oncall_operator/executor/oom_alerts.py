"""An alert about an OOM kill joins the kill's Incident; the memory actions run once, from the pod.

The intake hands every notification here first (:mod:`.runtime`). When it is an OOM alert
(:mod:`oncall_operator.domain.oom_alert`: a Runbook triggers on its name *and* on the OOMKilled
event, and its labels name a pod the operator watches), this module reads each pod it names and
hands it to the OOM flow (:func:`oom.remediate`), exactly as the pod watch would: when the watch
got there first the kill is already recorded and that is a no-op (no write); when the alert comes
first the flow plans and acts from the pod's real status, under the same per-workload lock, so
the kill is counted and raised once whichever arrives first. Then the alert is written into the
Incident of the pod's top-level owner (:func:`oom_alert.join`). Nothing is ever decided from the
alert's labels beyond which pod to read.

Anything else, and an OOM alert whose pods are gone or show no kill, goes to the alert flow
(:func:`alerts.accept`) and opens an Incident of its own, as before: an alert is never dropped.
A replica standing by never acts: it only joins an Incident that exists already. Until the
operator's indices hold every Runbook (the first seconds after a start) an OOM alert is not
recognised and opens its own Incident: telling it would cost every alert that names a pod two
lists of Runbooks.

This module calls two flows (the OOM flow and the alert flow), like :mod:`.open_incidents`
calls the escalation and the settling, so it is not one of the independent flows.
"""

import collections.abc as cabc
import datetime as dt
import logging
from typing import Any

import aiohttp

from oncall_operator.adapters import apiserver, incidents, intake, peering, workloads
from oncall_operator.api import incident
from oncall_operator.domain import alerts, oom, oom_alert, oom_incident
from oncall_operator.executor import alerts as alert_flow
from oncall_operator.executor import context
from oncall_operator.executor import oom as oom_flow

log = logging.getLogger(__name__)


async def accept(ctx: context.Context, names: cabc.Mapping[str, Any], payload: alerts.Payload) -> intake.Accepted:
    """The intake's write: an OOM alert into its kill's Incident, anything else to the alert flow."""
    try:
        joined = await _join(ctx, payload)
    except (apiserver.ApiError, aiohttp.ClientError, TimeoutError, OSError, incidents.ConflictsExhausted) as error:
        raise intake.Unavailable(f"OOM alert {payload.alertname}: {error!r}") from error  # Alertmanager retries
    if joined is not None:
        return joined
    return await alert_flow.accept(ctx, names, payload)


async def _join(ctx: context.Context, payload: alerts.Payload) -> intake.Accepted | None:
    cfg, api = ctx.config, ctx.intake_api
    refs = oom_alert.named_pods(payload, cfg.watch_namespaces)
    if not refs:  # most alerts name no pod: they cost nothing here
        return None
    candidates = ctx.indices.runbook_candidates()  # None until Kopf has listed every Runbook
    if candidates is None or not oom_alert.is_oom_alert(payload.alertname, candidates):
        return None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    written: list[tuple[str, incident.IncidentStatus | None, bool]] = []
    for ref in refs:
        body = await workloads.pod(api, ref.namespace, ref.name)
        if body is None:
            continue
        facts = oom.read_pod(body)
        if peering.acting() and facts.kills:
            await oom_flow.remediate(ctx, body, candidates)  # a no-op when the pod watch recorded it
        target = await workloads.owner(api, ref.namespace, facts.owner, facts.name, ctx.oom.owners)
        name = oom_incident.incident_name(target.kind, ref.namespace, target.name)
        raw = await workloads.incident(api, ref.namespace, name)
        if raw is None:
            continue  # no kill recorded for this pod (or a standby): the alert opens its own Incident

        def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
            return oom_alert.join(current.status, payload, now)

        done = await incidents.update_status_async(api, ref.namespace, name, mutate, known=raw)
        if done is not None:
            written.append((f"{ref.namespace}/{name}", done.incident.status, done.changed))
    if not written:
        return None
    where, status, changed = written[0]
    log.info("alert %s joined %s", payload.alertname, ", ".join(w[0] for w in written))
    phase = status.phase.value if status is not None and status.phase is not None else ""
    return intake.Accepted(where, False, changed, phase)
