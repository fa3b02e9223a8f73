"""An Incident's first status, whoever made it (the intake, the OOM watch, a person with kubectl).

The intake and the OOM watch write it themselves in their first status write (with Ready), so
a young Incident they labelled is left to them; one made by a person, or one whose creator
died before writing, is opened here: Triggered, seen once, the first timeline entry, Ready.
An Incident that is open already only gets its Ready checked (:mod:`.ready`).
"""

import collections.abc as cabc
import datetime as dt
from typing import Any

from oncall_operator.adapters import incidents
from oncall_operator.api import incident
from oncall_operator.domain import lifecycle
from oncall_operator.executor import context, incident_cap, ready

MANAGED_BY = ("app.kubernetes.io/managed-by", "oncall-operator")
CREATOR_GRACE = dt.timedelta(seconds=60)


def creator_deadline(meta: cabc.Mapping[str, Any]) -> dt.datetime | None:
    """Until when a young Incident is left to its creator (the intake, the OOM watch) to open; None when it
    is not theirs or its creation time does not parse (then it is opened at once)."""
    if (meta.get("labels") or {}).get(MANAGED_BY[0]) != MANAGED_BY[1]:
        return None
    try:
        created = dt.datetime.fromisoformat(str(meta.get("creationTimestamp")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return created + CREATOR_GRACE


def _creator_writes_status(meta: cabc.Mapping[str, Any], now: dt.datetime) -> bool:
    """A young Incident the intake or the OOM watch made: its creator's status write is on its way.

    Opening it here too would race that write (a 409 and a read, or two writes). Should the
    creator die in between, its own retry (Alertmanager's redelivery, the pod watch's relisting)
    writes the status; an Incident still unopened after the grace is opened here: at its next
    event, or when :mod:`.open_incidents` looks at it again at the grace's end (no event may come).
    """
    deadline = creator_deadline(meta)
    return deadline is not None and now < deadline


async def changed(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    """Open a new Incident, or check an open one's Ready."""
    meta = body["metadata"]
    if (body.get("status") or {}).get("phase"):
        await ready.check_incident(ctx, body)
        return
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if _creator_writes_status(meta, now):
        return

    def open_once(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status and current.status.phase:
            return None
        if (held := incident_cap.held(current, meta["namespace"], now)) is not None:
            return held if held != current.status else None
        verdict = ctx.indices.verdict(current.spec, meta["namespace"])
        return lifecycle.with_ready(lifecycle.opened(current.spec, now), verdict, current.metadata.generation, now)

    written = await incidents.update_status_async(ctx.api, meta["namespace"], meta["name"], open_once, known=body)
    if written and written.changed and written.incident.status is not None and written.incident.status.phase:
        ctx.events.emit(body, False, "Triggered", written.incident.status.timeline[0].message)
