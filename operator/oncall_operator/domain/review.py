"""Post-incident reviews: when the meeting is due, and the report to fill in.

The handbook: after every P1/P2 Incident (critical or warning here) write an incident report,
find the root cause, define action items, meet within 2 days, update the runbook. The
operator opens the review when such an Incident is resolved: a due date two business days
out (business hours from the escalation policy, else Mon-Fri 09:00-17:00 UTC) and a
markdown report rendered from the Incident's own record, with the parts only people can
write left as prompts. Pure: ``now`` and the Incident are arguments.
"""

import datetime as dt
import zoneinfo

from oncall_operator.api import base, incident, policy
from oncall_operator.domain.business_days import DEFAULT_HOURS, WEEKDAYS

REVIEWED = (base.Severity.CRITICAL, base.Severity.WARNING)


def needs_review(inc: incident.Incident) -> bool:
    status = inc.status
    return (
        inc.spec.severity in REVIEWED
        and status is not None
        and status.phase == incident.Phase.RESOLVED
        and status.review is None
    )


def due(resolved: dt.datetime, hours: policy.BusinessHours | None, business_days: int = 2) -> dt.datetime:
    """The end of business on the ``business_days``-th business day after ``resolved``."""
    hours = hours or DEFAULT_HOURS
    zone = zoneinfo.ZoneInfo(hours.time_zone)
    day = resolved.astimezone(zone).date()
    days = {d.value for d in hours.days}
    counted = 0
    while counted < business_days:
        day += dt.timedelta(days=1)
        if WEEKDAYS[day.weekday()] in days:
            counted += 1
    end = dt.time.fromisoformat(hours.to)
    return dt.datetime.combine(day, end, tzinfo=zone).astimezone(dt.UTC)


def _when(at: dt.datetime | None) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "-"


def _minutes(start: dt.datetime | None, end: dt.datetime | None) -> str:
    return f"{int((end - start).total_seconds() // 60)} min" if start and end else "-"


def render(inc: incident.Incident, due_at: dt.datetime, steps: list[str] | None = None) -> str:
    """The incident report in markdown: facts from the record, prompts where people must write."""
    s = inc.status or incident.IncidentStatus()
    spec = inc.spec
    lines = [
        f"# Incident report: {spec.title}",
        "",
        f"- **Incident:** `{inc.metadata.namespace}/{inc.metadata.name}`",
        f"- **Severity:** {spec.severity.value}",
        f"- **Source:** {spec.source.type.value}" + (f" ({spec.source.alert_name})" if spec.source.alert_name else ""),
        f"- **Target:** {s.target or '-'}",
        f"- **Triggered:** {_when(s.first_seen)}; **acknowledged:** {_when(s.acknowledged_at)}"
        f" by {s.acknowledged_by or '-'}; **resolved:** {_when(s.resolved_at)} by {s.resolved_by or '-'}",
        f"- **Time to acknowledge:** {_minutes(s.first_seen, s.acknowledged_at)};"
        f" **time to resolve:** {_minutes(s.first_seen, s.resolved_at)}",
        f"- **Occurrences:** {s.occurrences}; **highest escalation level:** {s.escalation.level}",
        f"- **Review meeting due:** {_when(due_at)}",
        "",
        "## Summary",
        "",
        spec.description or "_What happened, in two or three sentences, for someone who was not there._",
        "",
        "## Timeline",
        "",
        "| time (UTC) | event | by | details |",
        "| --- | --- | --- | --- |",
    ]
    for e in s.timeline:
        message = e.message.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {_when(e.at)} | {e.type} | {e.actor} | {message} |")
    lines += ["", "## Actions taken", ""]
    if s.actions:
        lines += ["| time (UTC) | action | state | before | after | reason |", "| --- | --- | --- | --- | --- | --- |"]
        for a in s.actions:
            lines.append(f"| {_when(a.at)} | {a.action} | {a.state.value} | {a.before} | {a.after} | {a.reason} |")
    else:
        lines.append("_No automatic action was taken._")
    notified = sorted({(n.channel, n.user) for n in s.escalation.notifications if n.result == "Delivered"})
    lines += ["", "## Who was notified", ""]
    lines += [f"- {channel}: {who}" for channel, who in notified] or ["_Nobody was notified._"]
    if steps:
        lines += ["", "## Runbook checklist", ""]
        done = {c.title for c in s.checklist if c.done}
        lines += [f"- [{'x' if step in done else ' '}] {step}" for step in steps]
    lines += [
        "",
        "## Root cause",
        "",
        "_Why did it happen? Ask why until the answer is something we can change._",
        "",
        "## Action items",
        "",
        "| action | owner | due | ticket |",
        "| --- | --- | --- | --- |",
        "| _e.g. add an alert on connection-pool saturation_ | | | |",
        "",
        "## Runbook update",
        "",
        "_What should the runbook say next time? Link the change._",
        "",
    ]
    return "\n".join(lines)
