"""An Incident's first status: what the board shows before anybody or anything acts on it.

Pure: the caller passes ``now``. Later steps of the lifecycle (acknowledge, mitigate,
resolve, reopen) and the escalation state machine build on the status made here.
"""

import datetime as dt

from oncall_operator.api import incident
from oncall_operator.domain import conditions


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


def with_ready(
    status: incident.IncidentStatus, verdict: conditions.Verdict, generation: int, now: dt.datetime
) -> incident.IncidentStatus:
    """``status`` with the Ready condition of ``verdict`` for ``generation``.

    The operator's own writers (the OOM watch, the intake) put it into the status write they
    make anyway, so the Incident's handler finds Ready already said and writes nothing more.
    """
    updated = status.model_copy(deep=True)
    updated.conditions = conditions.ready(list(status.conditions), verdict, generation, now)
    updated.observed_generation = generation
    return updated


def first_ready(
    status: incident.IncidentStatus | None,
    verdict: conditions.Verdict | None,
    generation: int,
    now: dt.datetime,
) -> incident.IncidentStatus | None:
    """A creator's status write with Ready added when it has none yet and a verdict is known."""
    if status is None or verdict is None or any(c.type == conditions.READY for c in status.conditions):
        return status
    return with_ready(status, verdict, generation, now)
