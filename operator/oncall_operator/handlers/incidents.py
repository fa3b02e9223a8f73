"""Incidents: give a new Incident its first status, and check what it refers to.

Only the opening step lives here; the escalation (:mod:`~oncall_operator.handlers.board`),
the runbook actions and the review have their own handlers. Whatever made the Incident (the
intake, the OOM watch, a person with kubectl), the board shows it the same way.
"""

import datetime as dt
from typing import Any

import kopf

from oncall_operator.adapters import incidents
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.domain import lifecycle
from oncall_operator.handlers import objects

MANAGED_BY = ("app.kubernetes.io/managed-by", "oncall-operator")
CREATOR_GRACE = dt.timedelta(seconds=60)


def _creator_writes_status(meta: Any, now: dt.datetime) -> bool:
    """A young Incident the intake or the OOM watch made: its creator's status write is on its way.

    Opening it here too would race that write (a 409 and a read, or two writes). Should the
    creator die in between, its own retry (Alertmanager's redelivery, the pod watch's relisting)
    writes the status; an Incident still unopened after the grace is opened here at its next event.
    """
    if (meta.get("labels") or {}).get(MANAGED_BY[0]) != MANAGED_BY[1]:
        return False
    try:
        created = dt.datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return now - created < CREATOR_GRACE


@kopf.on.event(GROUP, VERSION, kinds.INCIDENT.plural)
async def incident_changed(type: str, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    objects.mark_filled(memo)
    if type == "DELETED":
        return
    spec = incident.IncidentSpec.model_validate(dict(body["spec"]))
    meta = body["metadata"]
    if not (body.get("status") or {}).get("phase"):
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if _creator_writes_status(meta, now):
            return

        def open_once(current: incident.Incident) -> incident.IncidentStatus | None:
            if current.status and current.status.phase:
                return None
            verdict = objects.incident_verdict(memo.indices, current.spec, meta["namespace"])
            return lifecycle.with_ready(lifecycle.opened(current.spec, now), verdict, current.metadata.generation, now)

        written = await incidents.update_status_async(memo.api, meta["namespace"], meta["name"], open_once, known=body)
        if written and written.changed:
            kopf.info(body, reason="Triggered", message=lifecycle.opened(spec, now).timeline[0].message)
        return
    verdict = objects.incident_verdict(memo.indices, spec, meta["namespace"])
    await objects.write_ready(kinds.INCIDENT, body, memo, verdict)
