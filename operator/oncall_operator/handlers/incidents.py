"""Incidents: every event goes to the flows that care, through one registration.

Kopf stores nothing on an Incident (no finalizer, no progress annotation: ``on.event`` only),
so an Incident can be deleted while no operator runs; each flow keeps its own state in the
Incident's status. No Kopf index on Incidents either: Kopf's listing would cost the square of the
open Incidents (issue 18); the handler feeds the Incident names the intake needs and the page
budget's entries (:func:`~oncall_operator.executor.indices.see_incident`).
"""

from typing import Any

import kopf

from oncall_operator.adapters import metrics
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.executor import actions, incident_cap, indices, opening, review

PLURAL = kinds.INCIDENT.plural


@kopf.on.event(GROUP, VERSION, PLURAL)
async def incident_changed(type: str, uid: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Every flow that cares, in one registration: Kopf's cost per handler and event is paid once (issue 18).

    The gauge and MTTA/MTTR first (right after a restart too); a new Incident is opened (or an open
    one's Ready checked), the escalation looks at it, its runbook's actions run, a resolved one is reviewed.
    """
    memo.ctx.indices.mark_filled()
    incident_cap.see(body, deleted=type == "DELETED")
    indices.see_incident(memo.ctx.indices, body, deleted=type == "DELETED")
    if type == "DELETED":
        metrics.INCIDENTS.forget(uid)
        memo.ctx.incidents.forget((body["metadata"]["namespace"], body["metadata"]["name"]))
        return
    metrics.INCIDENTS.see(uid, body)
    await opening.changed(memo.ctx, body)
    await memo.ctx.incidents.seen(memo.ctx, dict(body))
    if actions.wants_actions(body.get("spec") or {}, body.get("status") or {}):
        await actions.run_due(memo.ctx, body)
    if (body.get("status") or {}).get("phase") == incident.Phase.RESOLVED.value:
        await review.open_review(memo.ctx, body)
