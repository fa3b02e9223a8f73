"""``kubectl oncall``: the on-call handbook from the terminal.

    kubectl oncall who [SCHEDULE] [--at TIME]        who is on call now (or at TIME) and next
    kubectl oncall ack INCIDENT                      acknowledge: stops the escalation
    kubectl oncall resolve INCIDENT [--note TEXT]    resolve: stops reminders, tells who was paged
    kubectl oncall timeline INCIDENT                 what happened, in order
    kubectl oncall override SCHEDULE --user U --from T --to T [--role R] [--reason TEXT]
    kubectl oncall calendar SCHEDULE [--days N]      the schedule as an iCalendar feed (RFC 5545)
    kubectl oncall report INCIDENT                   the post-incident review report
    kubectl oncall approve INCIDENT ACTION           approve a runbook action that awaits approval
    kubectl oncall check INCIDENT N                  tick item N (1-based) of the incident's checklist
    kubectl oncall maintenance start|stop            an ad-hoc maintenance window (plugin_maintenance)

kubectl finds this as ``kubectl-oncall`` on PATH (installed with the package). Acknowledge,
resolve, approve and check record who did it: the user the API server authenticated
(SelfSubjectReview), not a name typed on the command line. Every error is one line on stderr and a non-zero exit.
"""

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from typing import Any

import kubernetes

from oncall_operator.adapters import incidents, kube
from oncall_operator.api import GROUP, VERSION, incident, kinds, schedule
from oncall_operator.domain import checks, ical, lifecycle, schedules


class PluginError(Exception):
    """A problem worth one line to the user."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """RFC 3339, or ``now``, or ``now+2h``-style offsets (durations as in the API)."""
    from oncall_operator.api import durations

    if text == "now":
        return now
    if text.startswith("now+"):
        return now + durations.parse(text[4:])
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise PluginError(f"{text!r} is not a time: use RFC 3339 (2026-03-01T09:00:00Z), now, or now+2h") from error
    if value.tzinfo is None:
        raise PluginError(f"{text!r} has no time zone: add Z or an offset like +01:00")
    return value


def whoami(k: kube.Kube) -> str:
    """The authenticated user name, as the API server sees it."""
    review = kubernetes.client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    try:
        answer = kubernetes.client.AuthenticationV1Api(k.api).create_self_subject_review(review)
        info = answer.status.user_info if answer.status else None
        return str(info.username) if info is not None and info.username else "unknown"
    except kubernetes.client.ApiException:
        return "unknown"


def _incident(k: kube.Kube, namespace: str, name: str) -> incident.Incident:
    found = incidents.get(k, namespace, name)
    if found is None:
        raise PluginError(f'incident "{name}" not found in namespace "{namespace}"')
    return found


def _edit(
    k: kube.Kube,
    namespace: str,
    name: str,
    change: Callable[[incident.IncidentStatus, str, dt.datetime], lifecycle.Edit],
) -> str:
    """Apply a lifecycle edit, as the user the API server authenticated, to the latest Incident; its sentence."""
    user, now = whoami(k), _now()
    outcome = {"text": ""}

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        try:
            new, text = change(current.status or incident.IncidentStatus(), user, now)
        except ValueError as error:
            text = str(error)  # "is already resolved", or a sentence of its own
            raise PluginError(f'incident "{name}"' + (" " if text.startswith("is ") else ": ") + text) from error
        outcome["text"] = f'incident "{name}" {text}'
        return new

    _incident(k, namespace, name)
    incidents.update_status(k, namespace, name, mutate)
    return outcome["text"]


def cmd_ack(k: kube.Kube, args: argparse.Namespace) -> str:
    return _edit(k, args.namespace, args.incident, lifecycle.acknowledge)


def cmd_resolve(k: kube.Kube, args: argparse.Namespace) -> str:
    note = args.note or ""
    return _edit(k, args.namespace, args.incident, lambda st, user, now: lifecycle.resolve(st, user, now, note))


def cmd_approve(k: kube.Kube, args: argparse.Namespace) -> str:
    return _edit(k, args.namespace, args.incident, lambda st, user, now: lifecycle.approve(st, args.action, user, now))


def cmd_check(k: kube.Kube, args: argparse.Namespace) -> str:
    return _edit(k, args.namespace, args.incident, lambda st, user, now: lifecycle.check(st, args.item, user, now))


def cmd_timeline(k: kube.Kube, args: argparse.Namespace) -> str:
    inc = _incident(k, args.namespace, args.incident)
    status = inc.status or incident.IncidentStatus()
    lines = [f"{inc.metadata.name}: [{inc.spec.severity.value}] {inc.spec.title}  phase={status.phase or '-'}"]
    for entry in status.timeline:
        lines.append(f"{entry.at.isoformat()}  {entry.type:<14} {entry.actor:<20} {entry.message}")
    failed = [n for n in status.escalation.notifications if n.result == "Failed"]
    for n in failed:
        lines.append(f"{n.at.isoformat()}  {'NotifyFailed':<14} {n.channel:<20} {n.message}")
    return "\n".join(lines)


def _schedules(k: kube.Kube, namespace: str, name: str | None) -> list[schedule.OnCallSchedule]:
    try:
        if name:
            raw = [k.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, kinds.SCHEDULE.plural, name)]
        else:
            raw = k.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, kinds.SCHEDULE.plural)["items"]
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise PluginError(f'schedule "{name}" not found in namespace "{namespace}"') from error
        raise
    if not raw:
        raise PluginError(f'no OnCallSchedule in namespace "{namespace}"')
    return [schedule.OnCallSchedule.model_validate(r) for r in raw]


def cmd_who(k: kube.Kube, args: argparse.Namespace) -> str:
    now = _now()
    at = parse_time(args.at, now) if args.at else now
    lines = []
    for sched in _schedules(k, args.namespace, args.schedule):
        spec = sched.spec
        if not checks.zone_exists(spec.time_zone):
            raise PluginError(f'schedule "{sched.metadata.name}": {spec.time_zone!r} is not an IANA time zone')
        found = schedules.status(spec, at)
        zone = schedules.zone_of(spec)
        lines.append(f"{sched.metadata.name} ({spec.time_zone}) at {at.astimezone(zone).isoformat()}:")
        for role in found.roles:
            who = ", ".join(role.on_call) or "nobody"
            then = (
                f"  until {role.until.astimezone(zone).isoformat()}, then {', '.join(role.next) or 'nobody'}"
                if role.until
                else ""
            )
            lines.append(f"  {role.role:<20} {who}{then}")
    return "\n".join(lines)


def cmd_report(k: kube.Kube, args: argparse.Namespace) -> str:
    inc = _incident(k, args.namespace, args.incident)
    if inc.status is None or inc.status.review is None:
        phase = inc.status.phase.value if inc.status and inc.status.phase else "new"
        raise PluginError(
            f'incident "{args.incident}" has no review yet (phase {phase}; reviews open when a '
            "critical or warning incident is resolved)"
        )
    data = k.config_map_data(args.namespace, inc.status.review.report_config_map)
    if data is None or "report.md" not in data:
        raise PluginError(f'the report ConfigMap "{inc.status.review.report_config_map}" is missing')
    return data["report.md"].rstrip("\n")


def cmd_calendar(k: kube.Kube, args: argparse.Namespace) -> str:
    [sched] = _schedules(k, args.namespace, args.schedule)
    if not checks.zone_exists(sched.spec.time_zone):
        raise PluginError(f'schedule "{args.schedule}": {sched.spec.time_zone!r} is not an IANA time zone')
    now = _now()
    start = now - dt.timedelta(days=args.past_days)
    feed = ical.render(
        sched.metadata.name, sched.spec, start, now + dt.timedelta(days=args.days), now, namespace=args.namespace
    )
    return feed.rstrip("\r\n")


def cmd_override(k: kube.Kube, args: argparse.Namespace) -> str:
    now = _now()
    start, end = parse_time(args.start, now), parse_time(args.end, now)
    if end <= start:
        raise PluginError(f"--to ({end.isoformat()}) must be after --from ({start.isoformat()})")
    for _ in range(5):
        [sched] = _schedules(k, args.namespace, args.schedule)
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
            k.custom.replace_namespaced_custom_object(
                GROUP, VERSION, args.namespace, kinds.SCHEDULE.plural, args.schedule, body
            )
        except kubernetes.client.ApiException as error:
            if error.status == 409:
                continue
            raise
        span = f"from {start.isoformat()} to {end.isoformat()}"
        return f'override added to "{args.schedule}": {args.user} covers {role} {span}'
    raise PluginError(f'schedule "{args.schedule}" kept changing; try again')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl oncall", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("-n", "--namespace", help="namespace (default: the context's, else 'default')")
    sub = parser.add_subparsers(dest="command", required=True)
    who = sub.add_parser("who", help="who is on call now (or --at a time), and who is next")
    who.add_argument("schedule", nargs="?")
    who.add_argument("--at", help="RFC 3339 time, now, or now+2h")
    who.set_defaults(run=cmd_who)
    for name, fn, text in (
        ("ack", cmd_ack, "acknowledge an incident"),
        ("resolve", cmd_resolve, "resolve an incident"),
        ("timeline", cmd_timeline, "print an incident's timeline"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("incident")
        p.set_defaults(run=fn)
        if name == "resolve":
            p.add_argument("--note", help="what fixed it")
    approve = sub.add_parser("approve", help="approve a runbook action that awaits approval")
    approve.add_argument("incident")
    approve.add_argument("action", help="the action's name in the runbook")
    approve.set_defaults(run=cmd_approve)
    chk = sub.add_parser("check", help="tick an item of the incident's checklist")
    chk.add_argument("incident")
    chk.add_argument("item", type=int, help="the item's number, from 1")
    chk.set_defaults(run=cmd_check)
    rep = sub.add_parser("report", help="print the post-incident review report of a resolved incident")
    rep.add_argument("incident")
    rep.set_defaults(run=cmd_report)
    cal = sub.add_parser("calendar", help="the schedule as an iCalendar (RFC 5545) feed, for calendar apps")
    cal.add_argument("schedule")
    cal.add_argument("--days", type=int, default=90, help="how far ahead (default 90)")
    cal.add_argument("--past-days", type=int, default=7, help="how far back (default 7)")
    cal.set_defaults(run=cmd_calendar)
    over = sub.add_parser("override", help="let somebody cover a role for a time range")
    over.add_argument("schedule")
    over.add_argument("--user", required=True)
    over.add_argument("--from", dest="start", required=True)
    over.add_argument("--to", dest="end", required=True)
    over.add_argument("--role")
    over.add_argument("--reason")
    over.set_defaults(run=cmd_override)
    from oncall_operator import plugin_maintenance  # maintenance start|stop, kept in its own module

    plugin_maintenance.register(sub)
    return parser


def _connect(args: argparse.Namespace) -> kube.Kube:
    try:
        kubernetes.config.load_kube_config(config_file=args.kubeconfig, context=args.context)  # type: ignore[no-untyped-call]
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, FileNotFoundError) as error:
        raise PluginError(f"cannot load kubeconfig: {error}") from error
    if not args.namespace:
        context = next((c for c in contexts if c["name"] == args.context), active) if args.context else active
        args.namespace = (context or {}).get("context", {}).get("namespace") or "default"
    return kube.Kube(kubernetes.client.ApiClient())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        k = _connect(args)
        print(args.run(k, args))
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except kubernetes.client.ApiException as error:
        print(f"error: the API server said {error.status} {error.reason}: {_api_message(error)}", file=sys.stderr)
        return 1
    except (OSError, kubernetes.config.ConfigException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _api_message(error: Any) -> str:
    import json

    try:
        return str(json.loads(error.body).get("message", ""))
    except (TypeError, ValueError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
