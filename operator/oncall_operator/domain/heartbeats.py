"""Heartbeats: which alerts are beats, when a heartbeat is missed, and the Incident that says so.

Pure: the Heartbeats (parsed specs with namespace and name), an Alertmanager payload or a
Heartbeat's status, and ``now`` go in; decisions come out. The intake asks :func:`heard` which
Heartbeats a delivery beats (a beat never opens an Incident of its own); the Heartbeat's tick
asks :func:`look` whether it is alive, waiting for its first beat, or missed, and
:func:`missed` / :func:`returned` give the ``HeartbeatMissed`` Incident's status.

A Heartbeat in the operator's namespace hears its alert from anywhere; one in another namespace
hears only alerts labelled with its own ``namespace``, so a namespace user cannot swallow other
teams' alerts by declaring them heartbeats. ``Watchdog`` (Prometheus' always-firing alert) is
never an Incident, even when no Heartbeat hears it: the intake says so in its answer and log.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import hashlib
import re

from oncall_operator.api import base, durations, heartbeat, incident
from oncall_operator.domain import alerts, conditions, lifecycle, matching

WATCHDOG = "Watchdog"
ALERTNAME = "HeartbeatMissed"
RESOLVER = "heartbeat"
MIN_TIMEOUT = dt.timedelta(seconds=10)
State = heartbeat.State


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    namespace: str
    name: str
    spec: heartbeat.HeartbeatSpec


def hears(hb: Heartbeat, labels: cabc.Mapping[str, str], operator_namespace: str) -> bool:
    if labels.get("alertname") != hb.spec.alert_name:
        return False
    if hb.namespace != operator_namespace and labels.get("namespace") != hb.namespace:
        return False
    return matching.matches(hb.spec.matchers, labels)


def is_beat(payload: alerts.Payload, heartbeats: cabc.Iterable[Heartbeat], operator_namespace: str) -> bool:
    """Whether the delivery is a heartbeat's (its alerts are beats, never an Incident)."""
    if payload.alertname == WATCHDOG:
        return True
    return bool(payload.alerts) and all(
        any(hears(hb, a.labels, operator_namespace) for hb in heartbeats) for a in payload.alerts
    )


def heard(payload: alerts.Payload, heartbeats: cabc.Iterable[Heartbeat], operator_namespace: str) -> list[Heartbeat]:
    """The Heartbeats a firing delivery beats (a resolved Watchdog is no beat: its absence will page)."""
    firing = [a for a in payload.alerts if a.firing]
    return [hb for hb in heartbeats if any(hears(hb, a.labels, operator_namespace) for a in firing)]


def timeout(spec: heartbeat.HeartbeatSpec) -> dt.timedelta:
    return max(durations.parse(spec.timeout), MIN_TIMEOUT)


@dataclasses.dataclass(frozen=True)
class Look:
    state: heartbeat.State
    deadline: dt.datetime


def look(spec: heartbeat.HeartbeatSpec, last_beat: dt.datetime | None, created: dt.datetime, now: dt.datetime) -> Look:
    """Alive (a beat within the timeout), Waiting (none yet, the first still has time) or Missed."""
    deadline = (last_beat or created) + timeout(spec)
    if now >= deadline:
        return Look(State.MISSED, deadline)
    return Look(State.ALIVE if last_beat else State.WAITING, deadline)


def check(spec: heartbeat.HeartbeatSpec, policies: cabc.Mapping[str, object]) -> conditions.Verdict:
    """What the schema cannot check: the policy exists here, and the timeout is not too short to mean anything."""
    if spec.escalation_policy_ref.name not in policies:
        name = spec.escalation_policy_ref.name
        return conditions.Verdict(False, "PolicyNotFound", f"EscalationPolicy {name} does not exist in this namespace")
    if durations.parse(spec.timeout) < MIN_TIMEOUT:
        return conditions.Verdict(
            False, "TimeoutTooShort", f"timeout {spec.timeout} is taken as {MIN_TIMEOUT.seconds}s"
        )
    return conditions.Verdict(True, "Accepted", f"pages through {spec.escalation_policy_ref.name} after {spec.timeout}")


def incident_name(hb: Heartbeat) -> str:
    digest = hashlib.sha256(f"{hb.namespace}/{hb.name}".encode()).hexdigest()[:8]
    safe = re.sub(r"[^a-z0-9-]", "-", hb.name.lower())[:40].strip("-")
    return f"heartbeat-{safe}-{digest}"


def incident_spec(hb: Heartbeat) -> incident.IncidentSpec:
    spec = hb.spec
    return incident.IncidentSpec(
        title=spec.title or f"Heartbeat {hb.namespace}/{hb.name} missed: no {spec.alert_name} for {spec.timeout}",
        severity=spec.severity,
        source=incident.Source(
            type=incident.SourceType.HEARTBEAT,
            alert_name=ALERTNAME,
            labels={"alertname": ALERTNAME, "heartbeat": hb.name[:1024], "namespace": hb.namespace},
        ),
        target=incident.Target(namespace=hb.namespace),
        escalation_policy_ref=base.ObjectRef(name=spec.escalation_policy_ref.name),
        description=(
            f"The alerting pipeline stopped sending {spec.alert_name}: Alertmanager or Prometheus may be down, "
            "or the route between them and the operator broken. Nothing else can page while it is."
        ),
    )


def missed(
    spec: incident.IncidentSpec, status: incident.IncidentStatus | None, last_beat: dt.datetime | None, now: dt.datetime
) -> incident.IncidentStatus | None:
    """The Incident opened (or reopened) for a missed heartbeat; None when it is open already."""
    since = f"last beat {last_beat.isoformat()}" if last_beat else "no beat since the Heartbeat was created"
    if status is None or status.phase is None:
        return lifecycle.add(lifecycle.opened(spec, now), now, ALERTNAME, f"{spec.title} ({since})")
    if status.phase != incident.Phase.RESOLVED:
        return None
    st = status.model_copy(deep=True)
    st.occurrences, st.last_seen = st.occurrences + 1, now
    lifecycle.new_round(st, now, f"heartbeat missed again ({since})")
    return st


def returned(
    status: incident.IncidentStatus | None, last_beat: dt.datetime, now: dt.datetime
) -> incident.IncidentStatus | None:
    """The Incident resolved because beats are back; None when it is not open."""
    if status is None or status.phase in (None, incident.Phase.RESOLVED):
        return None
    st = status.model_copy(deep=True)
    st.phase, st.resolved_at, st.resolved_by = incident.Phase.RESOLVED, now, RESOLVER
    return lifecycle.add(st, now, "Resolved", f"heartbeat back: a beat at {last_beat.isoformat()}")
