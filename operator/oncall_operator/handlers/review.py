"""Open the post-incident review when a critical or warning Incident is resolved.

The report goes into a ConfigMap owned by the Incident (so it goes when the Incident goes),
the due date and the ConfigMap's name into the Incident's status, and a timeline entry and an
Event say so. Idempotent: the status write happens only while ``status.review`` is empty.
"""

import asyncio
import datetime as dt
from typing import Any

import kopf
import kubernetes

from oncall_operator.adapters import incidents
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.domain import review
from oncall_operator.handlers import escalation, objects

REPORT_KEY = "report.md"


def report_name(incident_name: str) -> str:
    return f"{incident_name[:245]}-review"


@kopf.on.event(GROUP, VERSION, kinds.INCIDENT.plural, when=lambda status, **_: status.get("phase") == "Resolved")
async def open_review(type: str, body: kopf.Body, memo: Any, logger: kopf.Logger, **kwargs: Any) -> None:
    if type == "DELETED":
        return
    inc = incident.Incident.model_validate(dict(body))
    if not review.needs_review(inc):
        return
    assert inc.status is not None
    found = escalation.policy_for(inc, kwargs["policy_specs"], kwargs["runbook_specs"])
    hours = found[1].business_hours if found else None
    due_at = review.due(inc.status.resolved_at or dt.datetime.now(dt.UTC), hours)
    steps: list[str] = []
    if inc.spec.runbook_ref is not None:
        ref: Any = inc.spec.runbook_ref
        rb = objects.lookup(kwargs["runbook_specs"], ref.namespace or inc.metadata.namespace, [ref.name]).get(ref.name)
        steps = [step.title for step in rb.steps] if rb else []
    meta = body["metadata"]
    name = report_name(meta["name"])
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kinds.INCIDENT.kind, "name": meta["name"], "uid": meta["uid"]}
    data = {REPORT_KEY: review.render(inc, due_at, steps)}
    labels = {"app.kubernetes.io/part-of": "oncall-operator", "oncall.dev/incident": meta["name"][:63]}
    try:
        await asyncio.to_thread(memo.kube.put_config_map, meta["namespace"], name, data, owner, labels)
    except kubernetes.client.ApiException as error:
        if error.status in (403, 404, 409):  # the namespace is going away, or the Incident is gone
            logger.warning("post-incident review not opened: %s %s", error.status, error.reason)
            return
        raise
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def record(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or current.status.review is not None:
            return None
        status = current.status.model_copy(deep=True)
        status.review = incident.Review(due_at=due_at, report_config_map=name)
        message = f"post-incident review opened: meeting due {due_at.isoformat()}, report in ConfigMap {name}"
        status.timeline.append(incident.TimelineEntry(at=now, type="ReviewOpened", message=message))
        return status

    written = await asyncio.to_thread(incidents.update_status, memo.kube, meta["namespace"], meta["name"], record)
    if written and written.changed:
        kopf.info(body, reason="ReviewOpened", message=f"meeting due {due_at.isoformat()}; report: ConfigMap {name}")
