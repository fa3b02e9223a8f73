"""What the API server cannot check: time zones, references between objects, orderings.

Each ``check_*`` takes a parsed spec and the facts it depends on (the other objects, the
Secrets' keys) and returns a :class:`conditions.Verdict`: every problem found, the first
one's reason as the condition reason, each message naming the field. The handlers gather the
facts and write the verdict as the ``Ready`` condition.
"""

import collections.abc as cabc
import dataclasses
import functools
import re
import zoneinfo

from oncall_operator.api import durations, incident, policy, runbook, schedule
from oncall_operator.domain import conditions, links, people, tenancy, war_room

Secrets = cabc.Mapping[str, frozenset[str]]
"""Secret name -> its keys, for the Secrets in the object's namespace."""


@dataclasses.dataclass(frozen=True)
class Problem:
    reason: str
    message: str


def verdict(problems: list[Problem], ok_message: str) -> conditions.Verdict:
    if not problems:
        return conditions.Verdict(True, "Valid", ok_message)
    return conditions.Verdict(False, problems[0].reason, "; ".join(p.message for p in problems))


@functools.lru_cache(maxsize=512)
def zone_exists(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(field: str, name: str) -> list[Problem]:
    if zone_exists(name):
        return []
    return [Problem("UnknownTimeZone", f"{field}: {name!r} is not an IANA time zone (e.g. Europe/Berlin)")]


def check_schedule(spec: schedule.OnCallScheduleSpec) -> conditions.Verdict:
    problems = _zone("spec.timeZone", spec.time_zone)
    members = {m.name for m in spec.members}
    for r, role in enumerate(spec.roles):
        for n, layer in enumerate(role.layers):
            field = f"spec.roles[{r}].layers[{n}].rotation"
            if durations.parse(layer.rotation.turn_length).total_seconds() < 60:
                problems.append(Problem("InvalidTurnLength", f"{field}.turnLength: must be at least 1m"))
            unknown = [p for p in layer.rotation.participants if members and p not in members]
            if unknown:
                problems.append(Problem("UnknownParticipant", f"{field}.participants: {unknown} not in spec.members"))
    for o, override in enumerate(spec.overrides):
        if members and override.user not in members:
            problems.append(
                Problem(
                    "UnknownParticipant",
                    f"spec.overrides[{o}].user: {override.user!r} not in spec.members",
                )
            )
    roles = ", ".join(r.name for r in spec.roles)
    return verdict(problems, f"{len(spec.roles)} roles ({roles}) in {spec.time_zone}" + _overlaps(spec))


def _overlaps(spec: schedule.OnCallScheduleSpec) -> str:
    """A note on overrides that overlap: allowed (they stack), but say who wins where."""
    notes = []
    for n, later in enumerate(spec.overrides):
        for m, earlier in enumerate(spec.overrides[:n]):
            if earlier.role == later.role and earlier.start < later.end and later.start < earlier.end:
                start, end = max(earlier.start, later.start), min(earlier.end, later.end)
                notes.append(
                    f"spec.overrides[{m}] and [{n}] overlap on {later.role} from {start.isoformat()} to "
                    f"{end.isoformat()}: {later.user!r} (listed later) is on call there"
                )
    return "; note: " + "; ".join(notes) if notes else ""


def _schedule_target(
    field: str,
    target: policy.ScheduleTarget,
    schedules: cabc.Mapping[str, schedule.OnCallScheduleSpec],
) -> list[Problem]:
    found = schedules.get(target.name)
    if found is None:
        return [
            Problem(
                "ScheduleNotFound",
                f"{field}.schedule.name: OnCallSchedule {target.name!r} not found in this namespace",
            )
        ]
    if all(r.name != target.role for r in found.roles):
        return [
            Problem(
                "RoleNotFound",
                f"{field}.schedule.role: OnCallSchedule {target.name!r} has no role {target.role!r}",
            )
        ]
    return []


def _target(
    field: str,
    target: policy.Target,
    spec: policy.EscalationPolicySpec,
    schedules: cabc.Mapping[str, schedule.OnCallScheduleSpec],
) -> list[Problem]:
    if target.schedule is not None:
        return _schedule_target(field, target.schedule, schedules)
    if target.team is not None and all(t.name != target.team for t in spec.teams):
        return [Problem("TeamNotFound", f"{field}.team: {target.team!r} is not in spec.teams")]
    return []


def check_policy(
    spec: policy.EscalationPolicySpec,
    schedules: cabc.Mapping[str, schedule.OnCallScheduleSpec],
    secrets: Secrets,
    forbidden: frozenset[str] = frozenset(),
    not_opted_in: frozenset[str] = frozenset(),
    trust: tenancy.Trust | None = None,
) -> conditions.Verdict:
    """``not_opted_in``: Secrets without the notifier label; ``trust``: judge endpoints and SMTP hosts too."""
    problems: list[Problem] = []
    previous = None
    for n, level in enumerate(spec.levels):
        after = durations.parse(level.after)
        if previous is not None and after <= previous:
            problems.append(
                Problem(
                    "LevelsOutOfOrder",
                    f"spec.levels[{n}].after: {level.after} must be later than the level before",
                )
            )
        previous = after
        for t, target in enumerate(level.targets):
            problems += _target(f"spec.levels[{n}].targets[{t}]", target, spec, schedules)
    for n, route in enumerate(spec.routes):
        problems += _target(f"spec.routes[{n}].target", route.target, spec, schedules)
    channels = {c.name for c in spec.channels}
    for n, team in enumerate(spec.teams):
        if team.channel is not None and team.channel not in channels:
            problems.append(
                Problem(
                    "ChannelNotFound",
                    f"spec.teams[{n}].channel: {team.channel!r} is not in spec.channels",
                )
            )
    for n, channel in enumerate(spec.channels):
        refused = tenancy.channel_refusal(channel, trust) if trust is not None else None
        if refused is not None:
            problems.append(Problem("ChannelNotAllowed", f"spec.channels[{n}]: {refused}"))
        ref = channel.secret_ref
        if ref is None:
            continue
        if ref.name in forbidden:
            problems.append(
                Problem(
                    "SecretNotReadable",
                    f"spec.channels[{n}].secretRef: the operator may not read Secret {ref.name!r} in this namespace "
                    "(RBAC: the Helm chart's rbac.secretNamespaces)",
                )
            )
        elif ref.name not in secrets:
            problems.append(
                Problem(
                    "SecretNotFound",
                    f"spec.channels[{n}].secretRef: Secret {ref.name!r} not found in this namespace",
                )
            )
        elif ref.key not in secrets[ref.name]:
            problems.append(
                Problem(
                    "SecretKeyNotFound",
                    f"spec.channels[{n}].secretRef.key: Secret {ref.name!r} has no key {ref.key!r}",
                )
            )
        elif ref.name in not_opted_in:
            problems.append(
                Problem("SecretNotOptedIn", f"spec.channels[{n}].secretRef: {tenancy.secret_refusal(ref.name, {})}")
            )
    if spec.business_hours is not None:
        problems += _zone("spec.businessHours.timeZone", spec.business_hours.time_zone)
    problems += _people(spec, schedules, secrets, forbidden)
    for n, level in enumerate(spec.levels):
        if level.war_room and not (war_room.bot_channel(spec) or spec.war_room.bridge_url):
            problems.append(
                Problem(
                    "NoWarRoom",
                    f"spec.levels[{n}].warRoom: needs a SlackBot channel (spec.warRoom.slackChannel) "
                    "or spec.warRoom.bridgeURL",
                )
            )
    templates = [(f"spec.links[{n}].url", link.url) for n, link in enumerate(spec.links)]
    if spec.war_room.bridge_url:
        templates.append(("spec.warRoom.bridgeURL", spec.war_room.bridge_url))
    for field, url in templates:
        unknown = links.unknown_placeholders(url)
        if unknown:
            problems.append(
                Problem(
                    "UnknownPlaceholder",
                    f"{field}: {unknown} (known: {', '.join(links.PLACEHOLDERS)})",
                )
            )
    return verdict(problems, f"{len(spec.levels)} levels, {len(spec.channels)} channels")


def secret_names(
    spec: policy.EscalationPolicySpec, schedules: cabc.Mapping[str, schedule.OnCallScheduleSpec]
) -> set[str]:
    """The Secrets a policy reads: its channels' and its people's own PagerDuty routing keys."""
    names = {c.secret_ref.name for c in spec.channels if c.secret_ref is not None}
    for sched in schedules.values():
        names |= {m.pager_duty_routing_key.name for m in sched.members if m.pager_duty_routing_key is not None}
    return names


def _people(
    spec: policy.EscalationPolicySpec,
    schedules: cabc.Mapping[str, schedule.OnCallScheduleSpec],
    secrets: Secrets,
    forbidden: frozenset[str],
) -> list[Problem]:
    """The people this policy may page: a rule's method needs a channel, a routing key its Secret."""
    problems: list[Problem] = []
    for sched_name, sched in sorted(schedules.items()):
        for m, member in enumerate(sched.members):
            field = f"OnCallSchedule {sched_name!r} spec.members[{m}]"
            for r, rule in enumerate(member.notification_rules):
                if people.carrier(spec, rule.method) is None:
                    kinds = " or ".join(k.value for k in people.CARRIERS[rule.method])
                    problems.append(
                        Problem(
                            "NoChannelForMethod",
                            f"{field}.notificationRules[{r}].method: {rule.method.value} needs a {kinds} "
                            "channel in spec.channels",
                        )
                    )
            ref = member.pager_duty_routing_key
            if ref is not None and (ref.name in forbidden or ref.key not in secrets.get(ref.name, frozenset())):
                problems.append(
                    Problem(
                        "SecretNotFound",
                        f"{field}.pagerDutyRoutingKey: Secret {ref.name!r} key {ref.key!r} not found or not readable",
                    )
                )
    return problems


def check_runbook(
    spec: runbook.RunbookSpec, policies: cabc.Mapping[str, policy.EscalationPolicySpec]
) -> conditions.Verdict:
    problems: list[Problem] = []
    for n, matcher in enumerate(spec.trigger.matchers):
        if matcher.op in (runbook.MatchOp.REGEX, runbook.MatchOp.NOT_REGEX):
            try:
                re.compile(matcher.value)
            except re.error as error:
                problems.append(
                    Problem(
                        "InvalidMatcher",
                        f"spec.trigger.matchers[{n}].value: not a regular expression ({error})",
                    )
                )
    found = None
    if spec.escalation_policy_ref is not None:
        found = policies.get(spec.escalation_policy_ref.name)
        if found is None:
            name = spec.escalation_policy_ref.name
            problems.append(
                Problem(
                    "PolicyNotFound",
                    f"spec.escalationPolicyRef.name: EscalationPolicy {name!r} not found in this namespace",
                )
            )
    for n, action in enumerate(spec.actions):
        if action.notify is None or found is None:
            continue
        if action.notify.team is not None and all(t.name != action.notify.team for t in found.teams):
            problems.append(
                Problem(
                    "TeamNotFound",
                    f"spec.actions[{n}].notify.team: {action.notify.team!r} is not a team of the escalation policy",
                )
            )
        if action.notify.channel is not None and all(c.name != action.notify.channel for c in found.channels):
            problems.append(
                Problem(
                    "ChannelNotFound",
                    f"spec.actions[{n}].notify.channel: {action.notify.channel!r} is not a channel of the policy",
                )
            )
    trigger = spec.trigger.alert_name or spec.trigger.event
    return verdict(problems, f"triggered by {trigger}, {len(spec.actions)} actions")


def check_incident(
    spec: incident.IncidentSpec,
    policies: cabc.Mapping[str, policy.EscalationPolicySpec],
    runbooks: cabc.Mapping[str, runbook.RunbookSpec],
    namespace: str = "",
    operator_namespace: str = "",
) -> conditions.Verdict:
    """With ``namespace`` and ``operator_namespace``, the tenancy rules too (:mod:`.tenancy`)."""
    problems: list[Problem] = []
    if operator_namespace:
        refusals = [
            tenancy.target_refusal(namespace, spec.target.namespace),
            tenancy.ref_refusal(
                "spec.runbookRef.namespace",
                namespace,
                spec.runbook_ref.namespace if spec.runbook_ref else None,
                operator_namespace,
            ),
            tenancy.ref_refusal(
                "spec.escalationPolicyRef.namespace",
                namespace,
                spec.escalation_policy_ref.namespace if spec.escalation_policy_ref else None,
                operator_namespace,
            ),
        ]
        problems += [Problem("CrossNamespace", text) for text in refusals if text is not None]
    if spec.escalation_policy_ref is not None and spec.escalation_policy_ref.name not in policies:
        name = spec.escalation_policy_ref.name
        problems.append(
            Problem(
                "PolicyNotFound",
                f"spec.escalationPolicyRef.name: EscalationPolicy {name!r} not found in this namespace",
            )
        )
    if spec.runbook_ref is not None and spec.runbook_ref.name not in runbooks:
        name = spec.runbook_ref.name
        problems.append(
            Problem(
                "RunbookNotFound",
                f"spec.runbookRef.name: Runbook {name!r} not found in this namespace",
            )
        )
    return verdict(problems, "references resolved")
