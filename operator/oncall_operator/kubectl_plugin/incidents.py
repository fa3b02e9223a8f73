"""The incident verbs: list the open ones, acknowledge, resolve, approve, check, timeline, report.

Every edit goes through :mod:`domain.lifecycle` (the same wording and bounds as the operator's
own writes) as the user the API server authenticated, in a read-modify-write guarded by the
resourceVersion (:func:`adapters.incidents.update_status`). The board's buttons call
:func:`edit` too.
"""

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

from oncall_operator.adapters import incidents, kube
from oncall_operator.api import GROUP, VERSION, base, incident, kinds
from oncall_operator.domain import lifecycle
from oncall_operator.kubectl_plugin import output
from oncall_operator.kubectl_plugin.errors import PluginError
from oncall_operator.kubectl_plugin.session import Session, now, whoami

Change = Callable[[incident.IncidentStatus, str, dt.datetime], lifecycle.Edit]
SEVERITY_ORDER = {s.value: n for n, s in enumerate(base.Severity)}
ACTIONS: dict[str, Change] = {
    "ack": lifecycle.acknowledge,
    "resolve": lifecycle.resolve,
}
"""What the board's buttons do, by the verb's name."""


def get(k: kube.Kube, namespace: str, name: str) -> incident.Incident:
    found = incidents.get(k, namespace, name)
    if found is None:
        raise PluginError(f'incident "{name}" not found in namespace "{namespace}"')
    return found


def edit(k: kube.Kube, namespace: str, name: str, change: Change) -> str:
    """Apply a lifecycle edit, as the user the API server authenticated, to the latest Incident; its sentence."""
    user, at = whoami(k), now()
    outcome = {"text": ""}

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        try:
            new, text = change(current.status or incident.IncidentStatus(), user, at)
        except ValueError as error:
            said = str(error)  # "is already resolved (by ...)", or a sentence of its own
            raise PluginError(f'incident "{name}"' + (" " if said.startswith("is ") else ": ") + said) from error
        outcome["text"] = f'incident "{name}" {text}'
        return new

    get(k, namespace, name)
    incidents.update_status(k, namespace, name, mutate)
    return outcome["text"]


def cmd_ack(s: Session, args: argparse.Namespace) -> str:
    return edit(s.kube, s.namespace, args.incident, lifecycle.acknowledge)


def cmd_resolve(s: Session, args: argparse.Namespace) -> str:
    note = args.note or ""
    return edit(s.kube, s.namespace, args.incident, lambda st, user, at: lifecycle.resolve(st, user, at, note))


def cmd_approve(s: Session, args: argparse.Namespace) -> str:
    return edit(s.kube, s.namespace, args.incident, lambda st, user, at: lifecycle.approve(st, args.action, user, at))


def cmd_check(s: Session, args: argparse.Namespace) -> str:
    return edit(s.kube, s.namespace, args.incident, lambda st, user, at: lifecycle.check(st, args.item, user, at))


def timeline_lines(inc: incident.Incident) -> list[str]:
    """The timeline and failed notifications, one line each, oldest first."""
    status = inc.status or incident.IncidentStatus()
    lines = [f"{e.at.isoformat()}  {e.type:<14} {e.actor:<20} {e.message}" for e in status.timeline]
    failed = [n for n in status.escalation.notifications if n.result == "Failed"]
    lines += [f"{n.at.isoformat()}  {'NotifyFailed':<14} {n.channel:<20} {n.message}" for n in failed]
    return lines


def cmd_timeline(s: Session, args: argparse.Namespace) -> str:
    inc = get(s.kube, s.namespace, args.incident)
    status = inc.status or incident.IncidentStatus()
    head = f"{inc.metadata.name}: [{inc.spec.severity.value}] {inc.spec.title}  phase={status.phase or '-'}"
    return "\n".join([head, *timeline_lines(inc)])


def cmd_report(s: Session, args: argparse.Namespace) -> str:
    inc = get(s.kube, s.namespace, args.incident)
    if inc.status is None or inc.status.review is None:
        phase = inc.status.phase.value if inc.status and inc.status.phase else "new"
        raise PluginError(
            f'incident "{args.incident}" has no review yet (phase {phase}; reviews open when a '
            "critical or warning incident is resolved)"
        )
    data = s.kube.config_map_data(s.namespace, inc.status.review.report_config_map)
    if data is None or "report.md" not in data:
        raise PluginError(f'the report ConfigMap "{inc.status.review.report_config_map}" is missing')
    return data["report.md"].rstrip("\n")


def open_incidents(s: Session) -> list[dict[str, Any]]:
    """The open (not Resolved) Incidents in scope, as the API server returned them, by severity then age."""
    if s.all_namespaces:
        raw = s.kube.custom.list_cluster_custom_object(GROUP, VERSION, kinds.INCIDENT.plural)["items"]
    else:
        raw = s.kube.custom.list_namespaced_custom_object(GROUP, VERSION, s.namespace, kinds.INCIDENT.plural)["items"]
    found = [r for r in raw if (r.get("status") or {}).get("phase") != incident.Phase.RESOLVED.value]
    return sorted(
        found,
        key=lambda r: (
            SEVERITY_ORDER.get(r["spec"].get("severity"), len(SEVERITY_ORDER)),
            r["metadata"].get("creationTimestamp", ""),
            r["metadata"].get("namespace", ""),
            r["metadata"]["name"],
        ),
    )


def needs_human(status: incident.IncidentStatus) -> str:
    return next((c.status.value for c in status.conditions if c.type == lifecycle.NEEDS_HUMAN), "")


def cmd_incidents(s: Session, args: argparse.Namespace) -> str:
    found = open_incidents(s)
    if args.output in ("json", "yaml"):
        return output.items(found, args.output)
    if not found:
        where = "any namespace" if s.all_namespaces else f'namespace "{s.namespace}"'
        return f"No open incidents in {where}."
    at, wide = now(), args.output == "wide"
    headers = ["NAMESPACE"] if s.all_namespaces else []
    headers += ["NAME", "SEVERITY", "PHASE", "NEEDS-HUMAN", "ACK-BY", "LEVEL", "AGE"]
    headers += ["ON-CALL", "TARGET", "RUNBOOK", "TITLE"] if wide else ["TITLE"]
    rows = []
    for raw in found:
        inc = incident.Incident.model_validate(raw)
        st = inc.status or incident.IncidentStatus()
        created = dt.datetime.fromisoformat(raw["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        row = [inc.metadata.namespace] if s.all_namespaces else []
        row += [inc.metadata.name, inc.spec.severity.value, st.phase.value if st.phase else "<none>"]
        row += [needs_human(st) or "-", st.acknowledged_by or "-", str(st.escalation.level), output.age(created, at)]
        if wide:
            runbook = inc.spec.runbook_ref.name if inc.spec.runbook_ref else "-"
            row += [st.on_call or "-", st.target or "-", runbook]
        rows.append([*row, inc.spec.title])
    return output.table(headers, rows)
