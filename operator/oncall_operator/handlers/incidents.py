"""Incidents: every event goes to the flows that care, one registration per concern.

Kopf stores nothing on an Incident (no finalizer, no progress annotation: ``on.event`` only),
so an Incident can be deleted while no operator runs; each flow keeps its own state in the
Incident's status. The index of Incident names lets the intake open a new alert group without
a read first.
"""

from typing import Any

import kopf
import pydantic

from oncall_operator.adapters import metrics
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.executor import actions, incident_cap, opening, review

PLURAL = kinds.INCIDENT.plural


@kopf.index(GROUP, VERSION, PLURAL)
def incident_homes(namespace: str | None, name: str, **_: Any) -> dict[str, str]:
    """The namespaces of every Incident name: the intake opens a new alert group without a read first."""
    return {name: namespace or ""}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def incident_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Open a new Incident (or check an open one's Ready); then the escalation looks at it."""
    memo.ctx.indices.mark_filled()
    incident_cap.see(body, deleted=type == "DELETED")
    if type == "DELETED":
        memo.ctx.incidents.forget((body["metadata"]["namespace"], body["metadata"]["name"]))
        return
    await opening.changed(memo.ctx, body)
    await memo.ctx.incidents.seen(memo.ctx, dict(body))


@kopf.on.event(GROUP, VERSION, PLURAL, when=lambda spec, status, **_: actions.wants_actions(spec, status))
async def incident_actions(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if type != "DELETED":
        await actions.run_due(memo.ctx, body)


@kopf.on.event(GROUP, VERSION, PLURAL, when=lambda status, **_: status.get("phase") == incident.Phase.RESOLVED.value)
async def incident_review(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    if type != "DELETED":
        await review.open_review(memo.ctx, body)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def incident_metrics(type: str, uid: str, body: kopf.Body, **_: Any) -> None:
    """The open-incident gauge and MTTA/MTTR, from the Incidents Kopf sees (right after a restart too)."""
    if type == "DELETED":
        metrics.INCIDENTS.forget(uid)
        return
    try:
        metrics.INCIDENTS.see(uid, incident.Incident.model_validate(dict(body)))
    except pydantic.ValidationError:
        return  # the Incident's own handler reports what is wrong with it
