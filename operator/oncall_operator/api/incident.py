"""Incident: one thing that went wrong, and everything done about it.

``kubectl get incidents`` is the incident board, so the spec says what happened (source,
severity, target, the runbook and policy that apply) and the status carries the lifecycle
(phase), the escalation state (level, next step, who was notified when and how), the
guardrail state of automatic actions, the checklist and the timeline. Everything the
operator needs to resume after a restart or a leader change is here, never in memory.
"""

import datetime as dt
import enum
from typing import Annotated

import pydantic

from oncall_operator.api import base


class SourceType(enum.StrEnum):
    ALERTMANAGER = "Alertmanager"
    OOM_KILL = "OOMKill"
    MANUAL = "Manual"
    HEARTBEAT = "Heartbeat"


class Source(base.Model):
    type: SourceType
    alert_name: Annotated[str, pydantic.Field(max_length=256)] | None = None
    group_key: (
        Annotated[
            str,
            pydantic.Field(max_length=4096, description="Alertmanager groupKey, the alert group's identity"),
        ]
        | None
    ) = None
    labels: Annotated[dict[str, str], pydantic.Field(max_length=64)] = {}
    annotations: Annotated[
        dict[str, str],
        pydantic.Field(max_length=16, description="The alert's annotations (summary, description, runbook_url...)"),
    ] = {}
    generator_url: Annotated[
        str, pydantic.Field(alias="generatorURL", max_length=2048, description="The alert's Prometheus expression link")
    ] = ""
    external_url: Annotated[
        str, pydantic.Field(alias="externalURL", max_length=2048, description="The Alertmanager that sent it")
    ] = ""


class Target(base.Model):
    """The affected workload (top-level owner), or just a namespace for alerts that name none."""

    kind: Annotated[str, pydantic.Field(max_length=63)] = ""
    namespace: Annotated[str, pydantic.Field(max_length=63)] = ""
    name: Annotated[str, pydantic.Field(max_length=253)] = ""
    container: Annotated[str, pydantic.Field(max_length=63)] = ""


class IncidentSpec(base.Model):
    title: Annotated[str, pydantic.Field(min_length=1, max_length=1024)]
    severity: base.Severity
    source: Source = Source(type=SourceType.MANUAL)
    target: Target = Target()
    runbook_ref: base.ObjectRef | None = None
    escalation_policy_ref: base.ObjectRef | None = None
    description: Annotated[str, pydantic.Field(max_length=16384)] = ""


class Phase(enum.StrEnum):
    TRIGGERED = "Triggered"
    ACKNOWLEDGED = "Acknowledged"
    MITIGATED = "Mitigated"
    RESOLVED = "Resolved"
    REOPENED = "Reopened"


class Notification(base.Model):
    """One message to one channel; ``key`` names the escalation step, so no step runs twice."""

    key: Annotated[str, pydantic.Field(min_length=1, max_length=128)]
    at: dt.datetime
    level: Annotated[int, pydantic.Field(ge=0, le=100)]
    loop: Annotated[int, pydantic.Field(ge=0, le=100)] = 0
    user: Annotated[str, pydantic.Field(max_length=256)] = ""
    channel: Annotated[str, pydantic.Field(max_length=63)]
    kind: Annotated[
        str,
        pydantic.Field(
            max_length=32,
            description="page, reminder, status-update, notify, acknowledge, resolve, action-notify, compacted",
        ),
    ] = "page"
    result: Annotated[
        str,
        pydantic.Field(
            max_length=32,
            description="Pending, Delivered, Failed, Compacted (a summary), Held or Summarized (the page budget), "
            "InMaintenance (a runbook message a window holds)",
        ),
    ]
    message: Annotated[str, pydantic.Field(max_length=2048)] = ""
    text: Annotated[
        str, pydantic.Field(max_length=1024, description="What is sent, kept while Pending so a re-send says the same")
    ] = ""
    claimed_by: Annotated[
        str, pydantic.Field(max_length=128, description="The operator process sending it now (Pending only)")
    ] = ""
    retry_at: Annotated[
        dt.datetime | None,
        pydantic.Field(
            description="When a Pending send is tried again: its lease ends, or its backoff after a failure"
        ),
    ] = None
    attempts: Annotated[int, pydantic.Field(ge=0, le=10000, description="Sends so far, re-sends included")] = 0


class Escalation(base.Model):
    level: Annotated[
        int,
        pydantic.Field(ge=0, le=100, description="1-based level reached; 0 before the first page"),
    ] = 0
    loop: Annotated[int, pydantic.Field(ge=0, le=100)] = 0
    started_at: dt.datetime | None = None
    next_step_at: dt.datetime | None = None
    next_reminder_at: dt.datetime | None = None
    closed: Annotated[
        bool, pydantic.Field(description="Resolved and everybody paged was told: nothing left to send")
    ] = False
    notifications: Annotated[list[Notification], pydantic.Field(max_length=500)] = []


class TimelineEntry(base.Model):
    at: dt.datetime
    type: Annotated[str, pydantic.Field(min_length=1, max_length=64)]
    message: Annotated[str, pydantic.Field(max_length=4096)]
    actor: Annotated[str, pydantic.Field(max_length=256)] = "oncall-operator"


class ActionState(enum.StrEnum):
    PLANNED = "Planned"
    APPLIED = "Applied"
    REFUSED = "Refused"
    DRY_RUN = "DryRun"
    AWAITING_APPROVAL = "AwaitingApproval"
    FAILED = "Failed"


class ActionRecord(base.Model):
    at: dt.datetime
    action: Annotated[str, pydantic.Field(max_length=63)]
    state: ActionState
    before: Annotated[str, pydantic.Field(max_length=1024)] = ""
    after: Annotated[str, pydantic.Field(max_length=1024)] = ""
    reason: Annotated[str, pydantic.Field(max_length=4096)] = ""
    type: Annotated[str, pydantic.Field(max_length=63, description="The action's type, e.g. raiseMemoryLimit")] = ""
    patch: Annotated[
        str, pydantic.Field(max_length=8192, description="The exact JSON patch sent, planned or recommended")
    ] = ""
    occurrence: Annotated[
        str, pydantic.Field(max_length=512, description="Key of the occurrence (e.g. the OOM kill) it answered")
    ] = ""


class Detection(base.Model):
    """What was seen when a trigger occurred (an OOM kill): the facts behind an action."""

    at: dt.datetime
    key: Annotated[str, pydantic.Field(max_length=512)]
    pod: Annotated[str, pydantic.Field(max_length=253)] = ""
    container: Annotated[str, pydantic.Field(max_length=63)] = ""
    restart_count: Annotated[int, pydantic.Field(ge=0)] = 0
    finished_at: Annotated[str, pydantic.Field(max_length=64)] = ""
    limit: Annotated[str, pydantic.Field(max_length=64, description="The container's memory limit then")] = ""
    request: Annotated[str, pydantic.Field(max_length=64, description="The container's memory request then")] = ""


class Guardrails(base.Model):
    """Where automatic actions stand against the runbook's bounds."""

    action_times: Annotated[
        list[dt.datetime],
        pydantic.Field(max_length=100, description="When actions were applied, for the rate window"),
    ] = []
    last_action_at: dt.datetime | None = None
    raises: Annotated[int, pydantic.Field(ge=0)] = 0
    seen: Annotated[
        list[Annotated[str, pydantic.Field(max_length=512)]],
        pydantic.Field(
            max_length=200,
            description="Keys of trigger occurrences already counted (e.g. pod UID/container/finishedAt)",
        ),
    ] = []
    healthy_since: Annotated[
        dt.datetime | None,
        pydantic.Field(description="Since when the mitigated workload's rollout has been complete without a trigger"),
    ] = None


class ChecklistItem(base.Model):
    title: Annotated[str, pydantic.Field(max_length=512)]
    done: bool = False
    by: Annotated[str, pydantic.Field(max_length=256)] = ""
    at: dt.datetime | None = None


class Approval(base.Model):
    """A person's go-ahead for a runbook action that requires approval (``kubectl oncall approve``)."""

    action: Annotated[str, pydantic.Field(min_length=1, max_length=63)]
    round: Annotated[
        str, pydantic.Field(max_length=512, description="The occurrence (round of actions) it was given for")
    ] = ""
    by: Annotated[str, pydantic.Field(max_length=256)]
    at: dt.datetime


class Review(base.Model):
    due_at: dt.datetime
    report_config_map: Annotated[str, pydantic.Field(max_length=253)] = ""


class IncidentStatus(base.ObjectStatus):
    phase: Phase | None = None
    on_call: Annotated[str, pydantic.Field(max_length=256, description="Who holds the Incident now")] = ""
    target: Annotated[str, pydantic.Field(max_length=512, description="kind/namespace/name, for kubectl get")] = ""
    occurrences: Annotated[int, pydantic.Field(ge=0)] = 0
    flaps: Annotated[
        int, pydantic.Field(ge=0, description="Times the alert group fired again while flapping: no reopening, no page")
    ] = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    acknowledged_by: Annotated[str, pydantic.Field(max_length=256)] = ""
    acknowledged_at: dt.datetime | None = None
    acknowledged_via: Annotated[
        str, pydantic.Field(max_length=32, description="How, when not kubectl: link, slack, pagerduty, sms, voice")
    ] = ""
    resolved_by: Annotated[str, pydantic.Field(max_length=256)] = ""
    resolved_at: dt.datetime | None = None
    resolved_via: Annotated[
        str, pydantic.Field(max_length=32, description="How, when not kubectl: link, slack, pagerduty, sms")
    ] = ""
    escalation: Escalation = Escalation()
    war_room: Annotated[
        str, pydantic.Field(max_length=2048, description="The war room: a Slack channel (#inc-...) and/or a bridge URL")
    ] = ""
    actions: Annotated[list[ActionRecord], pydantic.Field(max_length=200)] = []
    detections: Annotated[list[Detection], pydantic.Field(max_length=100, description="The latest occurrences")] = []
    guardrails: Guardrails = Guardrails()
    checklist: Annotated[list[ChecklistItem], pydantic.Field(max_length=50)] = []
    approvals: Annotated[list[Approval], pydantic.Field(max_length=100)] = []
    timeline: Annotated[list[TimelineEntry], pydantic.Field(max_length=1000)] = []
    review: Review | None = None
    alert_fingerprints: Annotated[
        list[Annotated[str, pydantic.Field(max_length=16)]],
        pydantic.Field(
            max_length=5000, description="Digests of the alerts already counted, for dedup (the oldest go first)"
        ),
    ] = []
    truncated_alerts: Annotated[
        int,
        pydantic.Field(
            ge=0, description="Alerts left out of the latest notification (Alertmanager's max_alerts, or ours)"
        ),
    ] = 0


class Incident(base.Model):
    api_version: str = "oncall.dev/v1alpha1"
    kind: str = "Incident"
    metadata: base.Metadata = base.Metadata()
    spec: IncidentSpec
    status: IncidentStatus | None = None
