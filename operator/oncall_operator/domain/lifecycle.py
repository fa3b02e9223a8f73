"""An Incident's first status: what the board shows before anybody or anything acts on it.

Pure: the caller passes ``now``. Later steps of the lifecycle (acknowledge, mitigate,
resolve, reopen) and the escalation state machine build on the status made here.
"""

import datetime as dt

from oncall_operator.api import incident


def target_text(target: incident.Target) -> str:
    """``Kind/namespace/name`` (or what there is of it) for the TARGET column."""
    parts = [p for p in (target.kind, target.namespace, target.name) if p]
    text = "/".join(parts)
    return f"{text}[{target.container}]" if target.container and text else text


def opened(spec: incident.IncidentSpec, now: dt.datetime) -> incident.IncidentStatus:
    """The status of a new Incident: Triggered, seen once, with the first timeline entry."""
    return incident.IncidentStatus(
        phase=incident.Phase.TRIGGERED,
        target=target_text(spec.target),
        occurrences=1,
        first_seen=now,
        last_seen=now,
        timeline=[
            incident.TimelineEntry(
                at=now,
                type="Triggered",
                message=f"{spec.severity.value} incident opened from {spec.source.type.value}: {spec.title}",
            )
        ],
    )
