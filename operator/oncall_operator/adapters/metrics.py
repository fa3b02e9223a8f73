"""Every Prometheus metric the operator exports, declared once, on one registry served at /metrics.

Counters count what this process did (alerts received, pages, notifications, remediations);
Prometheus' ``rate()`` copes with the reset a restart brings. The incident board is different:
``oncall_incidents_open`` must be right at any moment, also just after a restart, so it is not
a counter kept up to date but a collector that counts, at scrape time, the Incidents the
operator currently sees (Kopf lists them all at start-up and reports every change).

Time to acknowledge and time to resolve (MTTA, MTTR) are observed once per transition: when
the Incident shows an ``acknowledgedAt``/``resolvedAt`` that this process has not observed
and that is not older than the process itself. A restarted operator re-lists every Incident;
the transitions it finds there happened before it started and were observed (or missed) by
its predecessor, so they are not counted a second time. Durations run from the start of the
Incident's current episode (its escalation start, which a reopening moves), else first seen.
"""

import collections.abc as cabc
import datetime as dt
import threading
from typing import Any

import prometheus_client
from prometheus_client import core, registry

from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import base, incident, policy
from oncall_operator.domain import escalation, timestamps

REGISTRY = prometheus_client.CollectorRegistry()
prometheus_client.ProcessCollector(registry=REGISTRY)
prometheus_client.PlatformCollector(registry=REGISTRY)

_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0
ALERTS_RECEIVED = prometheus_client.Counter(
    "oncall_alerts_received",
    "Alerts in the Alertmanager notifications the intake accepted, by alert status",
    ["status"],
    registry=REGISTRY,
)
HEARTBEATS = prometheus_client.Counter(
    "oncall_heartbeats",
    "Beats recorded, by Heartbeat (namespace/name; empty: a Watchdog no Heartbeat hears)",
    ["heartbeat"],
    registry=REGISTRY,
)
INTAKE_REQUESTS = prometheus_client.Counter(
    "oncall_intake_requests",
    "Requests to the alert intake, by HTTP status code answered",
    ["code"],
    registry=REGISTRY,
)
ESCALATIONS = prometheus_client.Counter(
    "oncall_escalations",
    "Escalation levels paged (one per level and loop of an Incident), by level",
    ["level"],
    registry=REGISTRY,
)
NOTIFICATIONS = prometheus_client.Counter(
    "oncall_notifications",
    "Messages sent to a channel, by channel type and result (delivered, failed)",
    ["channel", "result"],
    registry=REGISTRY,
)
REMEDIATIONS = prometheus_client.Counter(
    "oncall_remediations",
    "Runbook actions decided, by action type and result (Applied, DryRun, Refused, AwaitingApproval, Failed...)",
    ["action", "result"],
    registry=REGISTRY,
)
TIME_TO_ACKNOWLEDGE = prometheus_client.Histogram(
    "oncall_incident_time_to_acknowledge_seconds",
    "From an Incident's (re)opening to its acknowledgement (MTTA), by severity",
    ["severity"],
    buckets=(30, _MINUTE, 2 * _MINUTE, 5 * _MINUTE, 10 * _MINUTE, 15 * _MINUTE, 30 * _MINUTE, _HOUR, 4 * _HOUR, _DAY),
    registry=REGISTRY,
)
TIME_TO_RESOLVE = prometheus_client.Histogram(
    "oncall_incident_time_to_resolve_seconds",
    "From an Incident's (re)opening to its resolution (MTTR), by severity",
    ["severity"],
    buckets=(_MINUTE, 5 * _MINUTE, 15 * _MINUTE, 30 * _MINUTE, _HOUR, 2 * _HOUR, 4 * _HOUR, 8 * _HOUR, _DAY, 7 * _DAY),
    registry=REGISTRY,
)
_LATE = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, _MINUTE, 2 * _MINUTE, 5 * _MINUTE)
LOOK_DELAY = prometheus_client.Histogram(
    "oncall_escalation_look_delay_seconds",
    "From when an open Incident's next step or retry was due to when the escalation loop's look at it started",
    buckets=_LATE,
    registry=REGISTRY,
)
PAGE_LATENESS = prometheus_client.Histogram(
    "oncall_escalation_page_lateness_seconds",
    "From when an escalation step was due (its Incident's nextStepAt) to when its sends finished, by level",
    ["level"],
    buckets=_LATE,
    registry=REGISTRY,
)
EVENT_LOOP_LAG = prometheus_client.Histogram(
    "oncall_event_loop_lag_seconds",
    "How much later than asked a short sleep of the operator's event loop returned (its backlog of ready work)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
    registry=REGISTRY,
)
OPEN_PHASES = tuple(p for p in incident.Phase if p != incident.Phase.RESOLVED)
SEVERITIES = frozenset(s.value for s in base.Severity)


def record_remediation(action: str, result: str) -> None:
    """Count one runbook action's outcome: ``action`` its type (``raiseMemoryLimit``), ``result`` its
    :class:`~oncall_operator.api.incident.ActionState` value (``Applied``, ``Refused``, ``DryRun``...)."""
    REMEDIATIONS.labels(action=action or "unknown", result=result or "unknown").inc()


def record_alerts(statuses: cabc.Iterable[str]) -> None:
    for status in statuses:
        ALERTS_RECEIVED.labels(status=status).inc()


def record_escalation(
    sends: cabc.Iterable[escalation.Send], results: cabc.Iterable[dispatch.Result], spec: policy.EscalationPolicySpec
) -> None:
    """Count the pages among ``sends`` by level, and each delivery by channel type and result."""
    for send in sends:
        if send.kind == "page" and not send.method:  # a person's rule step is no escalation of its own
            ESCALATIONS.labels(level=str(send.level)).inc()
    types = {c.name: c.type.value.lower() for c in spec.channels}
    for result in results:
        NOTIFICATIONS.labels(
            channel=types.get(result.channel, "unknown"), result="delivered" if result.ok else "failed"
        ).inc()


def record_lateness(sends: cabc.Iterable[escalation.Send], due: dt.datetime | None, done: dt.datetime) -> None:
    """How late the pages among ``sends`` went out against ``due`` (their step's nextStepAt), once per level."""
    if due is None or due > done:
        return
    for level in {s.level for s in sends if s.kind == "page" and not s.method}:
        PAGE_LATENESS.labels(level=str(level)).observe((done - due).total_seconds())


class IncidentGauges(registry.Collector):
    """The Incidents this process sees: the open-incident gauge, and MTTA/MTTR observed once."""

    def __init__(self, started: dt.datetime) -> None:
        self.started = started.replace(microsecond=0)
        self._lock = threading.Lock()
        self._open: dict[str, tuple[str, str]] = {}
        self._observed: dict[str, set[str]] = {}

    def see(self, uid: str, body: cabc.Mapping[str, Any]) -> None:
        """One Incident as the watch sent it: read from its raw fields, as on every event (no validation)."""
        status, severity = body.get("status") or {}, str((body.get("spec") or {}).get("severity") or "")
        phase = str(status.get("phase") or "")
        with self._lock:
            if not phase or phase == incident.Phase.RESOLVED.value or severity not in SEVERITIES:
                self._open.pop(uid, None)
            else:
                self._open[uid] = (severity, phase)
            if not status or severity not in SEVERITIES:
                return
            esc = status.get("escalation") or {}
            begun = timestamps.parse(esc.get("startedAt")) or timestamps.parse(status.get("firstSeen"))
            done = self._observed.get(uid, set())  # kept only once it holds a mark: most Incidents never do
            for what, at, histogram in (
                ("ack", timestamps.parse(status.get("acknowledgedAt")), TIME_TO_ACKNOWLEDGE),
                ("resolve", timestamps.parse(status.get("resolvedAt")), TIME_TO_RESOLVE),
            ):
                mark = f"{what}@{at.isoformat()}" if at else ""
                if at is None or begun is None or at < self.started or mark in done:
                    continue
                done.add(mark)
                self._observed[uid] = done
                histogram.labels(severity=severity).observe(max((at - begun).total_seconds(), 0.0))

    def forget(self, uid: str) -> None:
        with self._lock:
            self._open.pop(uid, None)
            self._observed.pop(uid, None)

    def collect(self) -> cabc.Iterator[core.Metric]:
        family = core.GaugeMetricFamily(
            "oncall_incidents_open",
            "Incidents not resolved, by severity and phase (from the Incidents the operator sees)",
            labels=["severity", "phase"],
        )
        with self._lock:
            counts: dict[tuple[str, str], int] = {}
            for key in self._open.values():
                counts[key] = counts.get(key, 0) + 1
        for severity in base.Severity:
            for phase in OPEN_PHASES:
                family.add_metric([severity.value, phase.value], counts.get((severity.value, phase.value), 0))
        yield family


INCIDENTS = IncidentGauges(dt.datetime.now(dt.UTC))
REGISTRY.register(INCIDENTS)
