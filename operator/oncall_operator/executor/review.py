"""The post-incident review, opened when a critical or warning Incident is resolved.

The report goes into a ConfigMap owned by the Incident (so it goes when the Incident goes),
the due date and the ConfigMap's name into the Incident's status, and a timeline entry and an
Event say so. Idempotent: the status write happens only while ``status.review`` is empty.
"""

import asyncio
import collections.abc as cabc
import datetime as dt
import logging
from typing import Any

import kubernetes

from oncall_operator.adapters import incidents
from oncall_operator.api import GROUP, VERSION, incident, kinds
from oncall_operator.domain import lifecycle, review
from oncall_operator.executor import context

log = logging.getLogger(__name__)
REPORT_KEY = "report.md"


def report_name(incident_name: str) -> str:
    return f"{incident_name[:245]}-review"


async def open_review(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    """Write the report and record the review on the Incident, unless it has one already."""
    inc = incident.Incident.model_validate(dict(body))
    if not review.needs_review(inc):
        return
    assert inc.status is not None
    found = ctx.indices.policy_for(inc)
    hours = found[1].business_hours if found else None
    due_at = review.due(inc.status.resolved_at or dt.datetime.now(dt.UTC), hours)
    steps: list[str] = []
    rb = ctx.indices.runbook_of(inc)
    if rb is not None:
        steps = [step.title for step in rb[1].steps]
    meta = body["metadata"]
    name = report_name(meta["name"])
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kinds.INCIDENT.kind, "name": meta["name"], "uid": meta["uid"]}
    data = {REPORT_KEY: review.render(inc, due_at, steps)}
    labels = {"app.kubernetes.io/part-of": "oncall-operator", "oncall.dev/incident": meta["name"][:63]}
    try:
        await asyncio.to_thread(ctx.kube.put_config_map, meta["namespace"], name, data, owner, labels)
    except kubernetes.client.ApiException as error:
        if error.status in (403, 404, 409):  # the namespace is going away, or the Incident is gone
            log.warning("post-incident review not opened: %s %s", error.status, error.reason)
            return
        raise
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def record(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or current.status.review is not None:
            return None
        status = current.status.model_copy(deep=True)
        status.review = incident.Review(due_at=due_at, report_config_map=name)
        message = f"post-incident review opened: meeting due {due_at.isoformat()}, report in ConfigMap {name}"
        return lifecycle.add(status, now, "ReviewOpened", message)

    written = await incidents.update_status_async(ctx.api, meta["namespace"], meta["name"], record, known=body)
    if written and written.changed:
        ctx.events.emit(body, False, "ReviewOpened", f"meeting due {due_at.isoformat()}; report: ConfigMap {name}")
