"""Writing one Alertmanager notification into its Incident through the Kubernetes API.

The decisions are the domain's (:mod:`~oncall_operator.domain.alert_incident`); this module
finds the group's Incident, reads the Runbooks a new one may use, creates it under its
deterministic name (a second replica or a duplicate delivery meets AlreadyExists and joins
the same Incident) and writes the status through the optimistic-concurrency loop of
:mod:`incidents`. The calls block: run :func:`write` in a worker thread. Every API failure is
raised as :class:`intake.Unavailable`, which the intake answers with 503 so Alertmanager retries.

Runbooks are read from the API when a group's Incident is created (two list calls, only for a
new group) rather than from the operator's in-memory index: just after a start-up the index
may not be filled yet, and the first alert after a restart must still find its runbook.
"""

import collections.abc as cabc
import datetime as dt
from typing import Any

import kubernetes
import pydantic
import urllib3

from oncall_operator.adapters import incidents, intake, kube
from oncall_operator.api import GROUP, VERSION, kinds, runbook
from oncall_operator.domain import alert_incident, alerts


def write(
    k: kube.Kube, payload: alerts.Payload, now: dt.datetime, operator_namespace: str, scope: cabc.Sequence[str]
) -> intake.Accepted:
    """Create or update the group's Incident; :class:`intake.Unavailable` when the API fails."""
    try:
        return _write(k, payload, now, operator_namespace, scope)
    except kubernetes.client.ApiException as error:
        raise intake.Unavailable(f"Kubernetes API answered {error.status} {error.reason}") from error
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise intake.Unavailable(f"Kubernetes API unreachable: {error}") from error
    except incidents.ConflictsExhausted as error:
        raise intake.Unavailable(str(error)) from error


def _write(
    k: kube.Kube, payload: alerts.Payload, now: dt.datetime, operator_namespace: str, scope: cabc.Sequence[str]
) -> intake.Accepted:
    name = alerts.incident_name(payload)
    for namespace in alert_incident.homes(payload, operator_namespace, scope):
        found = incidents.get(k, namespace, name)
        if found is None:
            continue
        if (found.status is not None and found.status.detections) or not payload.firing:
            return _record(k, namespace, name, payload, now, (), (), created=False)
        # created, but the first status write failed: this retry brings the checklist and notes
        opening = _opening(k, payload, operator_namespace, scope, namespace)
        return _record(k, namespace, name, payload, now, opening.notes, opening.checklist, created=False)
    if not payload.firing:
        return intake.Accepted(incident="")  # the resolution of a group that never opened an Incident
    opening = _opening(k, payload, operator_namespace, scope, None)
    try:
        _, created = incidents.create(k, opening.namespace, opening.name, opening.spec, opening.labels)
    except kubernetes.client.ApiException as error:
        if error.status != 404 or opening.namespace == operator_namespace:
            raise
        # the alert's namespace does not exist here (an alert about another cluster): ours then
        opening = _opening(k, payload, operator_namespace, scope, operator_namespace)
        _, created = incidents.create(k, opening.namespace, opening.name, opening.spec, opening.labels)
    return _record(k, opening.namespace, opening.name, payload, now, opening.notes, opening.checklist, created)


def _opening(
    k: kube.Kube, payload: alerts.Payload, operator_namespace: str, scope: cabc.Sequence[str], forced: str | None
) -> alert_incident.Opening:
    home = forced or alert_incident.home(alert_incident.shared_labels(payload), operator_namespace, scope)
    found = [rb for ns in dict.fromkeys([home, operator_namespace]) for rb in runbooks(k, ns)]
    return alert_incident.opening(payload, found, operator_namespace, scope, forced)


def _record(
    k: kube.Kube,
    namespace: str,
    name: str,
    payload: alerts.Payload,
    now: dt.datetime,
    notes: cabc.Sequence[str],
    checklist: cabc.Sequence[str],
    created: bool,
) -> intake.Accepted:
    written = incidents.update_status(
        k,
        namespace,
        name,
        lambda current: alert_incident.record(current.spec, current.status, payload, now, notes, checklist),
    )
    if written is None:
        raise intake.Unavailable(f"Incident {namespace}/{name} was deleted while being written")
    status = written.incident.status
    phase = status.phase.value if status is not None and status.phase is not None else ""
    return intake.Accepted(f"{namespace}/{name}", created, written.changed, phase)


def runbooks(k: kube.Kube, namespace: str) -> list[tuple[str, str, runbook.RunbookSpec | None]]:
    """Every Runbook of ``namespace`` as (namespace, name, spec); a spec that does not parse is None."""
    listed: dict[str, Any] = k.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, kinds.RUNBOOK.plural)
    out: list[tuple[str, str, runbook.RunbookSpec | None]] = []
    for item in listed.get("items", []):
        try:
            spec: runbook.RunbookSpec | None = runbook.RunbookSpec.model_validate(item.get("spec") or {})
        except pydantic.ValidationError:
            spec = None
        out.append((namespace, item["metadata"]["name"], spec))
    return out
