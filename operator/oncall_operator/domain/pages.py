"""What a message about an Incident says: the Notice built from the Incident, its policy and one step.

The title once, the severity, the target, what the alert says (summary, description), its
links and the policy's tools (:mod:`~oncall_operator.domain.links`), the runbook's checklist,
the actions already taken and their result, and who else is paged at which level. Pure: the
notifier adapters render the Notice per channel (:mod:`~oncall_operator.domain.notices`).
"""

import datetime as dt

from oncall_operator.api import incident, policy
from oncall_operator.domain import escalation, links, notices

KIND = {
    "page": notices.NoticeKind.PAGE,
    "reminder": notices.NoticeKind.REMINDER,
    "status-update": notices.NoticeKind.REMINDER,
    "notify": notices.NoticeKind.NOTIFY,
    "action-notify": notices.NoticeKind.NOTIFY,
    "acknowledge": notices.NoticeKind.ACKNOWLEDGE,
    "resolve": notices.NoticeKind.RESOLVE,
    "war-room": notices.NoticeKind.NOTIFY,
    "page-summary": notices.NoticeKind.NOTIFY,
}


def paged(status: incident.IncidentStatus) -> list[str]:
    """Everybody paged so far, once each, with the first level that paged them: ``Bob (level 2)``."""
    first: dict[str, int] = {}
    for n in status.escalation.notifications:
        if n.kind not in ("page", "notify") or n.result in escalation.NOT_SENT:
            continue
        for name in n.user.split(", "):
            if name and name != "nobody on call":
                first.setdefault(name, n.level)
    return [f"{name} (level {level})" for name, level in first.items()]


def notice(
    send: escalation.Send, inc: incident.Incident, spec: policy.EscalationPolicySpec | None, now: dt.datetime
) -> notices.Notice:
    status = inc.status or incident.IncidentStatus()
    actor = {"acknowledge": status.acknowledged_by, "resolve": status.resolved_by}.get(send.kind, "")
    notes = inc.spec.source.annotations
    summary = notes.get("summary", "")
    summary = send.text + (f" {summary}" if summary and summary != inc.spec.title else "")
    return notices.Notice(
        kind=KIND[send.kind],
        namespace=inc.metadata.namespace,
        name=inc.metadata.name,
        title=inc.spec.title,
        severity=inc.spec.severity,
        timestamp=now,
        summary=summary,
        level=send.level,
        recipients=send.recipients,
        target=status.target,
        actor=actor,
        category=inc.spec.source.alert_name or inc.spec.source.type.value,
        description=notes.get("description") or notes.get("message") or inc.spec.description,
        checklist=[f"[{'x' if c.done else ' '}] {c.title}" for c in status.checklist],
        actions=[_action(a) for a in status.actions[-notices.LIST_MAX :]],
        paged=paged(status),
        links=links.for_incident(spec, inc),
        step=send.key,
    )


def _action(record: incident.ActionRecord) -> str:
    what = record.type or record.action
    change = f" {record.before} -> {record.after}" if record.before or record.after else ""
    reason = f" ({record.reason})" if record.reason else ""
    return notices.truncate(f"{what}: {record.state.value}{change}{reason}", 300)
