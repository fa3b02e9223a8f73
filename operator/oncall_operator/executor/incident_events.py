"""Every Incident event goes to the flows that care, in one place (fed by the Incident watch).

The gauge and MTTA/MTTR first (right after a restart too), the open count of the cap, the names
the intake needs and the page budget's entries; then a new Incident is opened (or an open one's
Ready checked), the escalation looks at it, its runbook's actions run, and a resolved one is
reviewed. The watch (:mod:`oncall_operator.adapters.incidentwatch`) hands over one event of an
Incident at a time, and only once Kopf's indices of Schedules, Policies and Runbooks are filled.
"""

from oncall_operator.adapters import metrics, watchevents
from oncall_operator.api import incident
from oncall_operator.executor import actions, context, incident_cap, indices, opening, review


async def changed(ctx: context.Context, event: watchevents.Event) -> None:
    """One Incident event (a list's, or a watch's ADDED, MODIFIED or DELETED)."""
    body, deleted = event.obj, event.type == "DELETED"
    meta = body["metadata"]
    incident_cap.see(body, deleted=deleted)
    indices.see_incident(ctx.indices, body, deleted=deleted)
    if deleted:
        metrics.INCIDENTS.forget(meta.get("uid", ""))
        ctx.incidents.forget((meta["namespace"], meta["name"]))
        return
    metrics.INCIDENTS.see(meta.get("uid", ""), body)
    await opening.changed(ctx, body)
    await ctx.incidents.seen(ctx, body)
    if actions.wants_actions(body.get("spec") or {}, body.get("status") or {}):
        await actions.run_due(ctx, body)
    if (body.get("status") or {}).get("phase") == incident.Phase.RESOLVED.value:
        await review.open_review(ctx, body)
