"""The Incident an Alertmanager alert group opens, and how each delivery is written into it.

One Incident per alert group (see :func:`alerts.incident_name`). Its spec is decided once, when
the first firing delivery creates it: severity, team and target workload from the labels the
group's alerts share, the title from the ``summary`` annotation, the Runbook whose trigger
names the alert (the Incident's namespace first, then the operator's), and that runbook's
escalation policy. Later deliveries only change the status, through :func:`record`, which is
applied to the *latest* Incident inside an optimistic-concurrency loop and returns None when a
delivery brings nothing new, so duplicates (an HA pair, Alertmanager's repeats) cost no write.

Phases: a resolved group resolves the Incident (``resolvedBy: alertmanager``); an alert firing
that was never seen before reopens a Resolved Incident (``Reopened``) and restarts its
escalation from that moment, so it pages again; unless the group is flapping
(:func:`noise.flapping`): then the Incident goes back to Triggered (or Acknowledged), its
escalation runs on without a new start, and ``status.flaps`` counts the round. A delivery of alerts already seen never
reopens and never re-pages: that is what one member of an HA pair sends after the other has
already delivered the resolution. A resolution that names only alerts from before the last
reopening is stale for the same reason and is ignored, and one that names no alert ever seen
firing (the fingerprints of a forged or foreign notification) closes nothing: ``ResolveIgnored``.

Tenancy: the Incident lives in the alert's ``namespace`` (when the operator watches it), else in
the operator's; its target keeps the labels' namespace, and the runbook actions act only when that
is the Incident's own (:func:`oncall_operator.domain.tenancy.target_refusal`).
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import hashlib
import re

from oncall_operator.api import base, incident, runbook
from oncall_operator.domain import alerts, lifecycle, matching, noise

SOURCE_LABEL, ALERTNAME_LABEL, TEAM_LABEL = "oncall.dev/source", "oncall.dev/alertname", "oncall.dev/team"
RESOLVER = "alertmanager"
SEVERITIES = {
    "critical": base.Severity.CRITICAL,
    "warning": base.Severity.WARNING,
    "info": base.Severity.INFO,
    "error": base.Severity.CRITICAL,
    "page": base.Severity.CRITICAL,
}
WORKLOAD_LABELS = (  # kube-state-metrics' label names, most specific owner first
    ("deployment", "Deployment"),
    ("statefulset", "StatefulSet"),
    ("daemonset", "DaemonSet"),
    ("cronjob", "CronJob"),
    ("job_name", "Job"),
    ("job", "Job"),
    ("pod", "Pod"),
)
DETECTIONS_MAX, SOURCE_LABELS_MAX = 100, 64
FINGERPRINTS_MAX = 5000
"""Alerts remembered for dedup: far more than the 100 detections, so a re-delivered big group counts nothing twice."""
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
Phase = incident.Phase
Candidates = cabc.Iterable[tuple[str, str, runbook.RunbookSpec | None]]
"""Runbooks as (namespace, name, spec); a spec that did not parse is None."""


@dataclasses.dataclass(frozen=True)
class Opening:
    """What the first delivery of a group creates: where, under which name, with what."""

    namespace: str
    name: str
    spec: incident.IncidentSpec
    labels: dict[str, str]
    notes: tuple[str, ...]
    """Timeline messages about decisions the labels forced (an unknown severity, truncated alerts)."""
    checklist: tuple[str, ...]


def shared_labels(payload: alerts.Payload) -> dict[str, str]:
    """The labels every alert of the group carries (``commonLabels``, or computed when left out)."""
    if payload.common_labels:
        return dict(payload.common_labels)
    first, *rest = payload.alerts
    return {k: v for k, v in first.labels.items() if all(a.labels.get(k) == v for a in rest)}


def severity(labels: cabc.Mapping[str, str], fallback: base.Severity | None) -> tuple[base.Severity, str]:
    """The severity and, when it is not the label as written, the note saying why."""
    raw = labels.get("severity")
    known = SEVERITIES.get((raw or "").strip().lower())
    if known is not None:
        same = known.value == raw
        return known, "" if same else f"severity label {raw!r} is taken as {known.value}"
    chosen, whose = (fallback, "the runbook's") if fallback is not None else (base.Severity.WARNING, "the default")
    what = f"severity label {raw!r} is not one of critical, warning, info" if raw else "no severity label"
    return chosen, f"{what}: {whose} severity {chosen.value} applies"


def target(labels: cabc.Mapping[str, str]) -> incident.Target:
    """The workload the labels name, most specific owner first; just the namespace when none."""
    kind, name = next(((k, labels[label]) for label, k in WORKLOAD_LABELS if labels.get(label)), ("", ""))
    if not kind and labels.get("workload") and labels.get("workload_type"):
        kind, name = labels["workload_type"].capitalize(), labels["workload"]
    return incident.Target(
        kind=kind[:63],
        namespace=labels.get("namespace", "")[:63],
        name=name[:253],
        container=labels.get("container", "")[:63],
    )


def home(labels: cabc.Mapping[str, str], operator_namespace: str, scope: cabc.Sequence[str]) -> str:
    """The alert's ``namespace`` when it is a namespace name the operator watches, else the operator's."""
    ns = labels.get("namespace", "")
    return ns if _DNS_LABEL.match(ns) and len(ns) <= 63 and matching.in_scope(ns, scope) else operator_namespace


def homes(payload: alerts.Payload, operator_namespace: str, scope: cabc.Sequence[str]) -> tuple[str, ...]:
    """Where the group's Incident may already live, the likeliest first.

    A group's shared labels can change as alerts join and leave it (one namespace, then two),
    so the Incident opened under the first answer must still be found under the second.
    """
    found = [home(shared_labels(payload), operator_namespace, scope), operator_namespace]
    found += [home(a.labels, operator_namespace, scope) for a in payload.alerts]
    return tuple(dict.fromkeys(found))[:4]


def lookups(homes: cabc.Sequence[str], covered: cabc.Collection[str], present: cabc.Collection[str]) -> tuple[str, ...]:
    """The homes where the group's Incident must be read from the API, in :func:`homes` order.

    ``covered`` are the namespaces whose Incidents the operator's in-memory index holds
    completely, ``present`` those of them where it holds one of the group's name: a covered
    home without one is known to have none, so reading it would only be a 404.
    """
    return tuple(ns for ns in homes if ns not in covered or ns in present)


def select_runbook(
    candidates: Candidates, alertname: str, labels: cabc.Mapping[str, str], namespaces: cabc.Sequence[str]
) -> matching.Chosen | None:
    """The Runbook whose trigger names the alert and whose matchers all match, by namespace order.

    Within a namespace the most specific (most matchers) wins, then the first by name, as for OOM kills.
    """
    found: dict[str, list[matching.Chosen]] = {ns: [] for ns in namespaces}
    for namespace, name, spec in candidates:
        if spec is None or namespace not in found or not alertname or spec.trigger.alert_name != alertname:
            continue
        if matching.matches(spec.trigger.matchers, labels):
            found[namespace].append(matching.Chosen(namespace, name, spec))
    for namespace in namespaces:
        if found[namespace]:
            return min(found[namespace], key=lambda c: (-len(c.spec.trigger.matchers), c.name))
    return None


def opening(
    payload: alerts.Payload,
    runbooks: Candidates,
    operator_namespace: str,
    scope: cabc.Sequence[str],
    namespace: str | None = None,
) -> Opening:
    """The Incident a firing group opens: namespace, name, spec, labels, notes and checklist.

    ``namespace`` overrides the choice (the alert's namespace does not exist in this cluster).
    """
    labels = shared_labels(payload)
    namespace = namespace or home(labels, operator_namespace, scope)
    chosen = select_runbook(runbooks, payload.alertname, labels, list(dict.fromkeys([namespace, operator_namespace])))
    level, note = severity(labels, chosen.spec.severity if chosen else None)
    notes = [note] if note else []
    if payload.truncated_alerts:
        notes.append(f"Alertmanager left out {payload.truncated_alerts} alerts of this group (max_alerts)")
    if chosen is None:
        notes.append(f"no Runbook triggers on alert {payload.alertname or '(unnamed)'!r} with these labels")
    policy = chosen.spec.escalation_policy_ref if chosen else None
    spec = incident.IncidentSpec(
        title=_title(payload, labels)[:1024],
        severity=level,
        source=incident.Source(
            type=incident.SourceType.ALERTMANAGER,
            alert_name=payload.alertname[:256] or None,
            group_key=payload.group_key[:4096],
            labels=_source_labels(payload, labels),
            annotations=_source_annotations(payload),
            generator_url=payload.alerts[0].generator_url[:2048] if payload.alerts else "",
            external_url=payload.external_url[:2048],
        ),
        target=target(labels),
        runbook_ref=_ref(chosen.name, chosen.namespace, namespace) if chosen else None,
        escalation_policy_ref=_ref(policy.name, chosen.namespace, namespace) if chosen and policy else None,
        description=_description(payload, chosen)[:16384],
    )
    meta = {SOURCE_LABEL: RESOLVER, "app.kubernetes.io/managed-by": "oncall-operator"}
    for key, value in ((ALERTNAME_LABEL, payload.alertname), (TEAM_LABEL, labels.get("team", ""))):
        if safe := _label_value(value):
            meta[key] = safe
    steps = tuple(s.title for s in chosen.spec.steps) if chosen else ()
    return Opening(namespace, alerts.incident_name(payload), spec, meta, tuple(notes), steps)


def record(
    spec: incident.IncidentSpec,
    status: incident.IncidentStatus | None,
    payload: alerts.Payload,
    now: dt.datetime,
    notes: cabc.Sequence[str] = (),
    checklist: cabc.Sequence[str] = (),
    flap: noise.Flap = noise.DEFAULT_FLAP,
) -> incident.IncidentStatus | None:
    """The status with this delivery written in, or None when it brings nothing new (``flap``: the policy's)."""
    first = status is None or status.phase is None or not status.detections
    st = lifecycle.opened(spec, now) if status is None or status.phase is None else status.model_copy(deep=True)
    if first:
        for note in notes:
            lifecycle.add(st, now, "AlertIntake", note)
        if not st.checklist and checklist:
            st.checklist = [incident.ChecklistItem(title=t[:512]) for t in checklist[:50]]
    changed = _fire(st, payload, now, first, flap) if payload.firing else _resolve(st, payload, now)
    if payload.truncated_alerts != st.truncated_alerts:
        st.truncated_alerts = payload.truncated_alerts
        if payload.truncated_alerts:
            lifecycle.add(st, now, "AlertsTruncated", f"{payload.truncated_alerts} alerts of the group were left out")
    return st if changed or st != status else None


def digest(key: str) -> str:
    """An alert's dedup key as 16 hex characters: 5,000 of them fit in 100 KiB."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _fire(
    st: incident.IncidentStatus, payload: alerts.Payload, now: dt.datetime, first: bool, flap: noise.Flap
) -> bool:
    known = {d.key for d in st.detections}
    counted = set(st.alert_fingerprints)
    new = list(
        {a.key: a for a in payload.alerts if a.firing and a.key not in known and digest(a.key) not in counted}.values()
    )
    if not new:
        if st.phase == Phase.RESOLVED or (st.last_seen is not None and st.last_seen >= now):
            return False  # a re-delivery of what is recorded (or of what was resolved since)
        st.last_seen = now
        return True
    if st.phase == Phase.RESOLVED and noise.flapping(st.timeline, now, flap.resolutions, flap.window):
        _flap(st, now, len(new), flap)
    elif st.phase == Phase.RESOLVED:
        _reopen(st, now, len(new))
    st.occurrences = (st.occurrences if not first else 0) + len(new)
    st.last_seen = now
    st.detections = [*st.detections, *(_detection(a, now) for a in new)][-DETECTIONS_MAX:]
    st.alert_fingerprints = [*st.alert_fingerprints, *(digest(a.key) for a in new)][-FINGERPRINTS_MAX:]
    names = ", ".join(_describe(a) for a in new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
    lifecycle.add(st, now, "AlertFiring", f"{len(new)} alert{'s' if len(new) > 1 else ''} firing: {names}")
    return True


def _reopen(st: incident.IncidentStatus, now: dt.datetime, count: int) -> None:
    lifecycle.new_round(st, now, f"{count} new alert{'s' if count > 1 else ''} fired after the incident was resolved")


def _flap(st: incident.IncidentStatus, now: dt.datetime, count: int, flap: noise.Flap) -> None:
    """Back to where it stood before the resolution, escalation running on: no reopening, no new page."""
    st.phase = Phase.ACKNOWLEDGED if st.acknowledged_at is not None else Phase.TRIGGERED
    st.resolved_at, st.resolved_by = None, ""
    st.escalation.closed = False
    st.flaps += 1
    lifecycle.add(
        st,
        now,
        "Flapping",
        f"{count} alert{'s' if count > 1 else ''} fired again after {flap.text()}: "
        f"flap #{st.flaps}, the Incident stays open and pages no more than its escalation says",
    )


RESOLVE_IGNORED = "ResolveIgnored"


def _resolve(st: incident.IncidentStatus, payload: alerts.Payload, now: dt.datetime) -> bool:
    if st.phase == Phase.RESOLVED:
        return False
    start = st.escalation.started_at or st.first_seen
    keys = {a.key for a in payload.alerts}
    seen = {d.key: d.at for d in st.detections}
    if not keys & seen.keys():  # names no alert seen firing: a forged or foreign resolve closes nothing
        if not st.timeline or st.timeline[-1].type != RESOLVE_IGNORED:
            lifecycle.add(st, now, RESOLVE_IGNORED, "a resolved notification named no alert seen firing: ignored")
            return True
        return False
    current = {k for k, at in seen.items() if start is None or at >= start}
    if current and keys <= seen.keys() and not keys & current:
        return False  # resolves only alerts from before the last reopening: a late duplicate
    st.phase, st.resolved_at, st.resolved_by = Phase.RESOLVED, now, RESOLVER
    count = len(payload.alerts)
    lifecycle.add(
        st, now, "Resolved", f"Alertmanager reports the group resolved ({count} alert{'s' if count > 1 else ''})"
    )
    return True


def _detection(alert: alerts.Alert, now: dt.datetime) -> incident.Detection:
    return incident.Detection(
        at=now,
        key=alert.key[:512],
        pod=alert.labels.get("pod", "")[:253],
        container=alert.labels.get("container", "")[:63],
    )


def _describe(alert: alerts.Alert) -> str:
    name = alert.labels.get("alertname", "alert")
    where = ",".join(f"{k}={alert.labels[k]}" for k in ("namespace", "pod", "instance") if k in alert.labels)
    summary = alert.annotations.get("summary", "")
    return f"{name}{{{where}}}" + (f" ({summary[:200]})" if summary else "")


def _title(payload: alerts.Payload, labels: cabc.Mapping[str, str]) -> str:
    summary = payload.common_annotations.get("summary")
    if not summary and len(payload.alerts) == 1:
        summary = payload.alerts[0].annotations.get("summary")
    if summary:
        return summary
    name = payload.alertname or "Alertmanager alert"
    where = "/".join(labels[k] for k in ("namespace", "deployment", "statefulset", "pod") if labels.get(k))
    return f"{name} ({where})" if where else name


def _description(payload: alerts.Payload, chosen: matching.Chosen | None) -> str:
    notes = payload.common_annotations
    parts = [notes.get("description") or notes.get("message") or ""]
    if notes.get("runbook_url"):
        parts.append(f"Runbook: {notes['runbook_url']}")
    if chosen is not None and chosen.spec.description:
        parts.append(f"Runbook {chosen.namespace}/{chosen.name}: {chosen.spec.description}")
    if payload.external_url:
        parts.append(f"Alertmanager: {payload.external_url}")
    return "\n\n".join(p for p in parts if p)


def _source_labels(payload: alerts.Payload, labels: cabc.Mapping[str, str]) -> dict[str, str]:
    """The group's labels, bounded: an Incident the API server refuses for its size would be retried forever."""
    merged = {**payload.group_labels, **labels}
    return {k[:256]: v[:1024] for k, v in list(merged.items())[:SOURCE_LABELS_MAX]}


def _source_annotations(payload: alerts.Payload) -> dict[str, str]:
    """The group's common annotations (else the first alert's), bounded like the labels: what a page quotes."""
    notes = payload.common_annotations or (payload.alerts[0].annotations if payload.alerts else {})
    return {k[:256]: v[:2048] for k, v in list(notes.items())[:16]}


def _ref(name: str, namespace: str, home_namespace: str) -> base.ObjectRef:
    return base.ObjectRef(name=name, namespace=None if namespace == home_namespace else namespace)


def _label_value(value: str) -> str:
    """``value`` made a valid Kubernetes label value (<= 63, alphanumerics at both ends), or ''."""
    return _LABEL_VALUE_UNSAFE.sub("-", value)[:63].strip("-_.")
