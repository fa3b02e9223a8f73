"""Where an alert about an OOM kill goes: into the kill's Incident, not an Incident of its own.

kube-state-metrics reports a kill as an alert (the handbook's ``PodOOMKilled``, labels
``namespace``, ``pod``, ``container``) seconds to minutes after the operator's pod watch has
seen it. Two Incidents for one kill would be two pages and two reviews, so an alert is an *OOM
alert* when a Runbook triggers on both its name and the ``OOMKilled`` event (the runbook says the
alert and the kill are one thing), and its labels name a pod in a namespace the operator
watches. Such an alert joins the Incident of the pod's top-level owner (``oom-<kind>-<name>-<hash>``):
it is written in the detections and the timeline, and changes nothing else. The memory actions
run once, from the pod's real status, in the OOM flow (the pod watch, or the intake handing it
the pod the alert names when the alert comes first); never from the alert's labels.

Pure: the payload, the Runbooks and the watch scope in, pod references and statuses out.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import re

from oncall_operator.api import incident, runbook
from oncall_operator.domain import alerts, lifecycle, matching

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
PODS_MAX = 10
"""Pods of one group the intake reads; a larger group's other pods are named in the timeline only."""
DETECTIONS_MAX = 100
Candidates = cabc.Iterable[tuple[str, str, runbook.RunbookSpec | None]]


@dataclasses.dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str


def is_oom_alert(alertname: str, runbooks: Candidates) -> bool:
    """Whether a Runbook triggers on both ``alertname`` and the OOMKilled event."""
    return bool(alertname) and any(
        spec is not None
        and spec.trigger.alert_name == alertname
        and spec.trigger.event == runbook.TriggerEvent.OOM_KILLED
        for _, _, spec in runbooks
    )


def pods(payload: alerts.Payload, runbooks: Candidates, scope: cabc.Sequence[str]) -> tuple[PodRef, ...]:
    """The pods an OOM alert group names (valid names, watched namespaces, at most :data:`PODS_MAX`).

    A name that is not a valid namespace or pod name is never put into a URL: such an alert
    is not an OOM alert here and opens its own Incident, where its labels are shown as sent.
    """
    return named_pods(payload, scope) if is_oom_alert(payload.alertname, runbooks) else ()


def named_pods(payload: alerts.Payload, scope: cabc.Sequence[str]) -> tuple[PodRef, ...]:
    """The pods the group's alerts name, whatever the alert (checked first: most alerts name none)."""
    found: dict[PodRef, None] = {}
    for alert in payload.alerts:
        ns, pod = alert.labels.get("namespace", ""), alert.labels.get("pod", "")
        if not (len(ns) <= 63 and _DNS_LABEL.match(ns) and len(pod) <= 253 and _DNS_SUBDOMAIN.match(pod)):
            continue
        if matching.in_scope(ns, scope):
            found[PodRef(ns, pod)] = None
    return tuple(found)[:PODS_MAX]


def join(
    status: incident.IncidentStatus | None, payload: alerts.Payload, now: dt.datetime
) -> incident.IncidentStatus | None:
    """The kill's Incident with this delivery noted (detections, timeline); None when it brings nothing new.

    The phase, the guardrails and the escalation are the OOM flow's: an alert neither reopens,
    resolves, nor pages. A firing alert is keyed as in an alert Incident (fingerprint and start),
    so Alertmanager's repeats and an HA pair's duplicates write nothing.
    """
    if status is None or status.phase is None:
        return None
    st = status.model_copy(deep=True)
    known = {d.key for d in st.detections}
    if payload.firing:
        new = list({a.key: a for a in payload.alerts if a.firing and a.key not in known}.values())
        if not new:
            return None
        st.detections = [
            *st.detections,
            *(
                incident.Detection(
                    at=now,
                    key=a.key[:512],
                    pod=a.labels.get("pod", "")[:253],
                    container=a.labels.get("container", "")[:63],
                )
                for a in new
            ),
        ][-DETECTIONS_MAX:]
        text = f"alert {payload.alertname} firing for {_names(new)}: joined the OOM kill's Incident"
        lifecycle.add(st, now, "AlertFiring", text)
        return st
    text = f"alert {payload.alertname} resolved for {_names(payload.alerts)} (the OOM flow resolves this Incident)"
    if any(e.type == "AlertResolved" and e.message == text for e in st.timeline[-20:]):
        return None
    lifecycle.add(st, now, "AlertResolved", text)
    return st


def _names(found: cabc.Sequence[alerts.Alert]) -> str:
    pods = [a.labels.get("pod", "?") for a in found[:10]]
    more = f" and {len(found) - 10} more" if len(found) > 10 else ""
    return "pod " + ", ".join(pods) + more
