"""Heartbeat: an alert that must keep arriving, so that a silent alerting pipeline pages somebody.

Alertmanager re-sends an always-firing alert (Prometheus' ``Watchdog``) every
``repeat_interval``; each delivery is a beat. When no beat came for ``timeout``, the operator
opens a critical ``HeartbeatMissed`` Incident that pages through ``escalationPolicyRef``, and
resolves it when beats return. A Heartbeat is an object of its own, not a field of a policy:
it has state (the last beat, the deadline) that needs a status, several pipelines (one per
Alertmanager or cluster) may page through one policy, and who may declare one is RBAC on its
kind. A Heartbeat outside the operator's namespace hears only alerts whose ``namespace`` label
is its own namespace, so a namespace user cannot swallow another team's alerts.
"""

import datetime as dt
import enum
from typing import Annotated

import pydantic

from oncall_operator.api import base, runbook


class HeartbeatSpec(base.Model):
    alert_name: Annotated[
        str, pydantic.Field(min_length=1, max_length=256, description="The alert that is the beat")
    ] = "Watchdog"
    matchers: Annotated[
        list[runbook.Matcher], pydantic.Field(max_length=20, description="Further matchers on the alert's labels")
    ] = []
    timeout: Annotated[
        base.Duration,
        pydantic.Field(
            description="Page when no beat came for this long (at least 10s; Alertmanager's repeat_interval plus slack)"
        ),
    ] = "5m"
    severity: base.Severity = base.Severity.CRITICAL
    escalation_policy_ref: base.LocalRef
    title: Annotated[str, pydantic.Field(max_length=512)] = ""


class State(enum.StrEnum):
    WAITING = "Waiting"
    ALIVE = "Alive"
    MISSED = "Missed"


class HeartbeatStatus(base.ObjectStatus):
    state: State | None = None
    last_beat_at: dt.datetime | None = None
    deadline: Annotated[dt.datetime | None, pydantic.Field(description="When it pages unless a beat comes")] = None
    incident: Annotated[str, pydantic.Field(max_length=253, description="The HeartbeatMissed Incident")] = ""


class Heartbeat(base.Model):
    api_version: str = "oncall.dev/v1alpha1"
    kind: str = "Heartbeat"
    metadata: base.Metadata = base.Metadata()
    spec: HeartbeatSpec
    status: HeartbeatStatus | None = None
