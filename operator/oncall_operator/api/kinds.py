"""The kinds as the API server knows them: names, scope, printer columns, models.

One table, read by the CRD generator, the operator's handlers and the kubectl plugin, so a
plural or a short name is written in exactly one place.
"""

import dataclasses
from typing import Any

import pydantic

from oncall_operator.api import heartbeat, incident, maintenance, policy, runbook, schedule

CATEGORY = "oncall"


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclasses.dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[pydantic.BaseModel]
    spec: type[pydantic.BaseModel]
    status: type[pydantic.BaseModel]
    columns: tuple[Column, ...]


READY = Column(
    "Ready",
    '.status.conditions[?(@.type=="Ready")].status',
    description="Whether the operator accepted the object",
)
REASON = Column("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1)
AGE = Column("Age", ".metadata.creationTimestamp", type="date")

SCHEDULE = Kind(
    kind="OnCallSchedule",
    plural="oncallschedules",
    singular="oncallschedule",
    short_names=("ocs",),
    model=schedule.OnCallSchedule,
    spec=schedule.OnCallScheduleSpec,
    status=schedule.OnCallScheduleStatus,
    columns=(
        Column("Timezone", ".spec.timeZone"),
        Column("On-Call", ".status.onCall", description="Who is on call now, per role"),
        Column("Next-Handoff", ".status.nextHandoff", description="The next change of who is on call"),
        Column("Next", ".status.nextOnCall", description="Who takes over at the next handoff"),
        READY,
        REASON,
        AGE,
    ),
)

POLICY = Kind(
    kind="EscalationPolicy",
    plural="escalationpolicies",
    singular="escalationpolicy",
    short_names=("escpol",),
    model=policy.EscalationPolicy,
    spec=policy.EscalationPolicySpec,
    status=policy.EscalationPolicyStatus,
    columns=(
        Column("Ack-Timeout", ".spec.ackTimeout"),
        READY,
        REASON,
        AGE,
    ),
)

RUNBOOK = Kind(
    kind="Runbook",
    plural="runbooks",
    singular="runbook",
    short_names=("rb",),
    model=runbook.Runbook,
    spec=runbook.RunbookSpec,
    status=runbook.RunbookStatus,
    columns=(
        Column("Alert", ".spec.trigger.alertName"),
        Column("Event", ".spec.trigger.event"),
        Column("Severity", ".spec.severity"),
        READY,
        REASON,
        AGE,
    ),
)

INCIDENT = Kind(
    kind="Incident",
    plural="incidents",
    singular="incident",
    short_names=("inc",),
    model=incident.Incident,
    spec=incident.IncidentSpec,
    status=incident.IncidentStatus,
    columns=(
        Column("Severity", ".spec.severity"),
        Column("Phase", ".status.phase"),
        Column(
            "Needs-Human",
            '.status.conditions[?(@.type=="NeedsHuman")].status',
            description="True when the automation stopped and a person must act",
        ),
        Column("Ack-By", ".status.acknowledgedBy", description="Who acknowledged (the API server's user)"),
        Column("Level", ".status.escalation.level", type="integer"),
        Column("On-Call", ".status.onCall", description="Who holds the Incident now"),
        Column("Target", ".status.target", description="The affected workload"),
        Column("Runbook", ".spec.runbookRef.name", priority=1),
        Column("Title", ".spec.title", priority=1),
        READY,
        AGE,
    ),
)

MAINTENANCE = Kind(
    kind="MaintenanceWindow",
    plural="maintenancewindows",
    singular="maintenancewindow",
    short_names=("mw",),
    model=maintenance.MaintenanceWindow,
    spec=maintenance.MaintenanceWindowSpec,
    status=maintenance.MaintenanceWindowStatus,
    columns=(
        Column("Mutes", ".spec.mutes"),
        Column("Active", ".status.active", type="boolean"),
        Column("Next-Start", ".status.nextStart"),
        Column("Next-End", ".status.nextEnd"),
        READY,
        Column("Reason", ".spec.reason", priority=1),
        AGE,
    ),
)

HEARTBEAT = Kind(
    kind="Heartbeat",
    plural="heartbeats",
    singular="heartbeat",
    short_names=("hb",),
    model=heartbeat.Heartbeat,
    spec=heartbeat.HeartbeatSpec,
    status=heartbeat.HeartbeatStatus,
    columns=(
        Column("Alert", ".spec.alertName"),
        Column("Timeout", ".spec.timeout"),
        Column("State", ".status.state"),
        Column("Last-Beat", ".status.lastBeatAt"),
        Column("Deadline", ".status.deadline"),
        READY,
        AGE,
    ),
)

ALL = (SCHEDULE, POLICY, RUNBOOK, INCIDENT, MAINTENANCE, HEARTBEAT)
