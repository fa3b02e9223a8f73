"""Incidents: the one Kopf handler of their events, and the opening step and Ready check.

Every change of an Incident goes, in this order, to the runbook actions, the escalation board,
the opening step and the Ready check here, the metrics and the post-incident review. One
registration rather than five: Kopf's cost per handler and event (arguments, outcome, a log
line) was paid five times for each of the several events of every Incident (measured at 50
alerts/s). One step failing is logged and does not keep the others from running; an event
handler is not retried by Kopf either way, the next event or the board's next look is.
Whatever made the Incident (the intake, the OOM watch, a person with kubectl), it is handled
the same way.
"""

import collections.abc as cabc
import datetime as dt
import logging
from typing import Any

import kopf

from oncall_operator.adapters import incidents
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.domain import lifecycle
from oncall_operator.handlers import actions, board, metrics, objects, review

log = logging.getLogger(__name__)

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
async def incident_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    objects.mark_filled(memo)
    for step in STEPS:
        try:
            await step(type, body, memo)
        except Exception:
            meta = body["metadata"]
            log.exception(
                "Incident %s/%s: %s.%s failed", meta["namespace"], meta["name"], step.__module__, step.__name__
            )


async def check(type: str, body: kopf.Body, memo: Any) -> None:
    """Open a new Incident (when no creator will), else say in Ready whether its references resolve."""
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


Step = cabc.Callable[[str, kopf.Body, Any], cabc.Awaitable[None]]
STEPS: tuple[Step, ...] = (actions.on_event, board.on_event, check, metrics.on_event, review.on_event)
