"""The schedule verbs: who is on call (now or at a time, and next), overrides, the iCalendar feed.

All answers come from the pure resolver (:mod:`domain.schedules`) run on the spec as the API
server holds it, so they agree with the operator's ``status`` and with the board.
"""

import argparse
import datetime as dt
from typing import Any

import kubernetes

from oncall_operator.api import GROUP, VERSION, durations, kinds, schedule
from oncall_operator.domain import checks, ical, schedules
from oncall_operator.kubectl_plugin import output
from oncall_operator.kubectl_plugin.errors import PluginError
from oncall_operator.kubectl_plugin.session import Session, now


def parse_time(text: str, at: dt.datetime) -> dt.datetime:
    """RFC 3339, or ``now``, or ``now+2h``-style offsets (durations as in the API)."""
    if text == "now":
        return at
    if text.startswith("now+"):
        return at + durations.parse(text[4:])
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise PluginError(f"{text!r} is not a time: use RFC 3339 (2026-03-01T09:00:00Z), now, or now+2h") from error
    if value.tzinfo is None:
        raise PluginError(f"{text!r} has no time zone: add Z or an offset like +01:00")
    return value


def fetch(s: Session, name: str | None) -> list[schedule.OnCallSchedule]:
    """The named schedule, or every schedule in scope (``-A``: every namespace); at least one."""
    try:
        if name:
            raw = [s.kube.custom.get_namespaced_custom_object(GROUP, VERSION, s.namespace, kinds.SCHEDULE.plural, name)]
        elif s.all_namespaces:
            raw = s.kube.custom.list_cluster_custom_object(GROUP, VERSION, kinds.SCHEDULE.plural)["items"]
        else:
            raw = s.kube.custom.list_namespaced_custom_object(GROUP, VERSION, s.namespace, kinds.SCHEDULE.plural)[
                "items"
            ]
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise PluginError(f'schedule "{name}" not found in namespace "{s.namespace}"') from error
        raise
    if not raw:
        where = "any namespace" if s.all_namespaces else f'namespace "{s.namespace}"'
        raise PluginError(f"no OnCallSchedule in {where}")
    return [schedule.OnCallSchedule.model_validate(r) for r in raw]


def valid(sched: schedule.OnCallSchedule) -> schedule.OnCallScheduleSpec:
    if not checks.zone_exists(sched.spec.time_zone):
        raise PluginError(f'schedule "{sched.metadata.name}": {sched.spec.time_zone!r} is not an IANA time zone')
    return sched.spec


def cmd_who(s: Session, args: argparse.Namespace) -> str:
    at = parse_time(args.at, now()) if args.at else now()
    found = [(sched, schedules.status(valid(sched), at)) for sched in fetch(s, args.schedule)]
    if args.output in ("json", "yaml"):
        records: list[dict[str, Any]] = [
            {
                "namespace": sched.metadata.namespace,
                "schedule": sched.metadata.name,
                "at": at.isoformat(),
                "roles": [r.wire() for r in status.roles],
            }
            for sched, status in found
        ]
        return output.items(records, args.output)
    if args.output == "wide" or s.all_namespaces:
        headers = ["NAMESPACE", "SCHEDULE", "ROLE", "ON-CALL", "UNTIL", "NEXT"]
        rows = [
            [
                sched.metadata.namespace,
                sched.metadata.name,
                r.role,
                ", ".join(r.on_call) or "nobody",
                r.until.astimezone(schedules.zone_of(sched.spec)).isoformat() if r.until else "-",
                ", ".join(r.next) or "-",
            ]
            for sched, status in found
            for r in status.roles
        ]
        return output.table(headers, rows)
    lines = []
    for sched, status in found:
        zone = schedules.zone_of(sched.spec)
        lines.append(f"{sched.metadata.name} ({sched.spec.time_zone}) at {at.astimezone(zone).isoformat()}:")
        for r in status.roles:
            then = (
                f"  until {r.until.astimezone(zone).isoformat()}, then {', '.join(r.next) or 'nobody'}"
                if r.until
                else ""
            )
            lines.append(f"  {r.role:<20} {', '.join(r.on_call) or 'nobody'}{then}")
    return "\n".join(lines)


def cmd_calendar(s: Session, args: argparse.Namespace) -> str:
    [sched] = fetch(s, args.schedule)
    at = now()
    start = at - dt.timedelta(days=args.past_days)
    feed = ical.render(
        sched.metadata.name, valid(sched), start, at + dt.timedelta(days=args.days), at, namespace=s.namespace
    )
    return feed.rstrip("\r\n")


def cmd_override(s: Session, args: argparse.Namespace) -> str:
    at = now()
    start, end = parse_time(args.start, at), parse_time(args.end, at)
    if end <= start:
        raise PluginError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    for _ in range(5):
        [sched] = fetch(s, args.schedule)
        roles = [r.name for r in sched.spec.roles]
        role = args.role or ("primary" if "primary" in roles else roles[0])
        if role not in roles:
            raise PluginError(f'schedule "{args.schedule}" has no role "{role}" (roles: {", ".join(roles)})')
        members = [m.name for m in sched.spec.members]
        if members and args.user not in members:
            raise PluginError(
                f'"{args.user}" is not a member of schedule "{args.schedule}" (members: {", ".join(members)})'
            )
        override = schedule.Override(role=role, user=args.user, start=start, end=end, reason=args.reason or "")
        body = sched.model_dump(by_alias=True, exclude_none=True, mode="json")
        body["spec"]["overrides"] = [*body["spec"].get("overrides", []), override.wire()]
        body.pop("status", None)
        try:
            s.kube.custom.replace_namespaced_custom_object(
                GROUP, VERSION, s.namespace, kinds.SCHEDULE.plural, args.schedule, body
            )
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                continue
            raise
        span = f"from {start.isoformat()} to {end.isoformat()}"
        return f'override added to "{args.schedule}": {args.user} covers {role} {span}'
    raise PluginError(f'schedule "{args.schedule}" kept changing; try again')
