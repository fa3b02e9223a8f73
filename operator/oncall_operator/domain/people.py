"""People and their own notification rules: which contact method, through which channel, when.

GoAlert and PagerDuty reach a person by *their* rules ("Slack at once, SMS at 2m, a call at
5m"), not only through a team's channel. A person is a schedule member
(:class:`~oncall_operator.api.schedule.Member`); their rule steps start when a level pages
them. Each step names the policy channel that carries its method: a ``SlackBot`` channel
(else a ``Slack`` webhook) for Slack, ``Twilio`` for SMS and Voice, ``Email``, ``PagerDuty``.
A method without such a channel is skipped here and reported by ``checks.check_policy``.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import hashlib
import re
import types

from oncall_operator.api import durations, policy, schedule

RULE_STEPS_BUDGET = 400
"""Rule steps are recorded only while the Incident holds fewer notifications (its status allows 500)."""

CARRIERS: cabc.Mapping[schedule.ContactMethod, tuple[policy.ChannelType, ...]] = types.MappingProxyType(
    {
        schedule.ContactMethod.SLACK: (policy.ChannelType.SLACK_BOT, policy.ChannelType.SLACK),
        schedule.ContactMethod.SMS: (policy.ChannelType.TWILIO,),
        schedule.ContactMethod.VOICE: (policy.ChannelType.TWILIO,),
        schedule.ContactMethod.EMAIL: (policy.ChannelType.EMAIL,),
        schedule.ContactMethod.PAGER_DUTY: (policy.ChannelType.PAGER_DUTY,),
    }
)
_UNSAFE = re.compile(r"[^a-z0-9]+")
_RULE_STEP = re.compile(r"^page/L\d+/loop\d+/[a-z0-9-]+/r\d+(@\d+)?$")


@dataclasses.dataclass(frozen=True)
class RuleStep:
    person: schedule.Member
    person_key: str
    index: int
    """1-based position of the rule in the person's list."""
    method: schedule.ContactMethod
    channel: str
    at: dt.datetime


def person_key(name: str) -> str:
    """A short, stable, key-safe name for a person: ``backend-lead-1a2b3c`` (the hash tells ``Bob`` from ``bob``)."""
    slug = _UNSAFE.sub("-", name.lower()).strip("-")[:32].strip("-") or "person"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def is_rule_step(key: str) -> bool:
    """Whether a notification key is a person's rule step (``page/L1/loop0/<person>/r1@...``)."""
    return bool(_RULE_STEP.match(key))


def method_of(key: str, person: schedule.Member) -> str:
    """The contact method of the rule a rule step's key names (``.../r2`` is the person's second rule); '' if gone."""
    found = re.search(r"/r(\d+)(?:@\d+)?$", key)
    index = int(found.group(1)) if found else 0
    rules = person.notification_rules
    return rules[index - 1].method.value if 1 <= index <= len(rules) else ""


def carrier(spec: policy.EscalationPolicySpec, method: schedule.ContactMethod) -> str | None:
    """The policy channel that carries ``method``: the first of the preferred type, or None."""
    for kind in CARRIERS[method]:
        for channel in spec.channels:
            if channel.type == kind:
                return channel.name
    return None


def rule_steps(
    spec: policy.EscalationPolicySpec, who: cabc.Sequence[schedule.Member], paged_at: dt.datetime
) -> list[RuleStep]:
    """Every rule step of every person in ``who``, for a level that paged them at ``paged_at``."""
    out = []
    for person in who:
        for index, rule in enumerate(person.notification_rules, start=1):
            channel = carrier(spec, rule.method)
            if channel is None:
                continue
            at = paged_at + durations.parse(rule.after)
            out.append(RuleStep(person, person_key(person.name), index, rule.method, channel, at))
    return out
