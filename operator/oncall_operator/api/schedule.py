"""OnCallSchedule: who is on call, by role, at any instant, in a named time zone.

Shaped after PagerDuty schedules (layers of rotations with a virtual start, a turn length,
restrictions, overrides) and Grafana OnCall (rolling users, handoff time): a schedule has
roles (``primary``, ``secondary``, ``crm-support`` ...); a role has layers, and where two
layers have somebody the one listed later wins; overrides stack, the one listed later wins.
Handoffs happen at the wall-clock ``handoffTime`` in ``timeZone``, across DST changes.
"""

import datetime as dt
import enum
from typing import Annotated

import pydantic

from oncall_operator.api import base


class Restriction(base.Model):
    """A window the layer is on call in, e.g. Mon-Fri 08:00-18:00; ``to`` before ``from`` wraps past midnight."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            ("self.from != self.to", "restriction 'from' and 'to' must differ", ".to"),
        )
    )

    days: Annotated[
        list[base.Weekday],
        pydantic.Field(min_length=1, max_length=7, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = list(base.Weekday)
    from_: Annotated[base.ClockTime, pydantic.Field(alias="from")]
    to: base.ClockTime


class Rotation(base.Model):
    """Participants take turns of ``turnLength``, starting with the first at ``start``."""

    participants: Annotated[list[base.Person], pydantic.Field(min_length=1, max_length=100)]
    turn_length: base.Duration = "1w"
    handoff_time: base.ClockTime = "09:00"
    start: Annotated[
        dt.date,
        pydantic.Field(
            description="The date (in the schedule's zone) the first participant's first turn starts, at handoffTime."
        ),
    ]


class Layer(base.Model):
    name: base.Identifier
    rotation: Rotation
    restrictions: Annotated[list[Restriction], pydantic.Field(max_length=14)] = []


class Coverage(enum.StrEnum):
    """Which empty time is a gap: every moment (``Always``), or only inside restriction windows (``Restricted``)."""

    ALWAYS = "Always"
    RESTRICTED = "Restricted"


class Role(base.Model):
    """One answer to "who is on call": a stack of layers, the later layer winning where it covers."""

    name: base.Identifier
    description: Annotated[str, pydantic.Field(max_length=1024)] = ""
    coverage: Annotated[
        Coverage,
        pydantic.Field(
            description=(
                "Always: any time with nobody on call is a coverage gap. Restricted: time outside every "
                "layer's restriction windows is intended off-hours; only holes inside a window are gaps."
            )
        ),
    ] = Coverage.ALWAYS
    layers: Annotated[
        list[Layer],
        pydantic.Field(
            min_length=1,
            max_length=10,
            json_schema_extra=base.keyed("name"),
        ),
    ]


class Override(base.Model):
    """Somebody covers a role for a time range; overrides stack, the one listed later wins."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "timestamp(self.end) > timestamp(self.start)",
                "override 'end' must be after 'start'",
                ".end",
            ),
        )
    )

    role: base.Identifier
    user: base.Person
    start: dt.datetime
    end: dt.datetime
    reason: Annotated[str, pydantic.Field(max_length=1024)] = ""


class ContactMethod(enum.StrEnum):
    """How a person can be reached: each needs its address on the member (Slack: ``slack``; SMS, Voice: ``phone``)."""

    EMAIL = "Email"
    SLACK = "Slack"
    SMS = "SMS"
    VOICE = "Voice"
    PAGER_DUTY = "PagerDuty"


class NotificationRule(base.Model):
    """One step of a person's own way of being paged: ``method`` at ``after`` since a level paged them.

    The steps run until the Incident is acknowledged (for a level with ``unless: Resolved``, resolved).
    """

    after: Annotated[base.Duration, pydantic.Field(description="Since the level paged this person, e.g. 0, 2m, 5m")] = (
        "0"
    )
    method: ContactMethod


class Member(base.Model):
    """A person: their addresses (contact methods) and, optionally, their own notification rules.

    Without ``notificationRules`` a person hears of a page through the level's channels only.
    """

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "!has(self.notificationRules) || self.notificationRules.all(r, "
                "(r.method != 'SMS' && r.method != 'Voice') || has(self.phone))",
                "an SMS or Voice notification rule needs 'phone'",
                ".phone",
            ),
            (
                "!has(self.notificationRules) || self.notificationRules.all(r, r.method != 'Slack' || has(self.slack))",
                "a Slack notification rule needs 'slack' (the member ID)",
                ".slack",
            ),
            (
                "!has(self.notificationRules) || self.notificationRules.all(r, r.method != 'Email' || has(self.email))",
                "an Email notification rule needs 'email'",
                ".email",
            ),
        )
    )

    name: base.Person
    email: base.Email | None = None
    slack: (
        Annotated[
            str,
            pydantic.Field(
                max_length=64, pattern=r"^[UW][A-Z0-9]{2,63}$", description="Slack member ID, e.g. U012AB3CD"
            ),
        ]
        | None
    ) = None
    phone: (
        Annotated[
            str,
            pydantic.Field(
                max_length=16,
                pattern=r"^\+[1-9][0-9]{6,14}$",
                description="E.164 number for SMS and voice calls, e.g. +4930123456",
            ),
        ]
        | None
    ) = None
    pager_duty_routing_key: Annotated[
        base.SecretKeyRef | None,
        pydantic.Field(
            description="The person's own PagerDuty service (Events API v2 routing key); "
            "default: the policy's PagerDuty channel, with an alert of their own"
        ),
    ] = None
    notification_rules: Annotated[
        list[NotificationRule],
        pydantic.Field(max_length=5, description="e.g. Slack at once, SMS at 2m, Voice at 5m, until acknowledged"),
    ] = []


class OnCallScheduleSpec(base.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "!has(self.overrides) || self.overrides.all(o, self.roles.exists(r, r.name == o.role))",
                "every override must name a role of this schedule (spec.overrides[].role)",
                ".overrides",
            ),
        )
    )

    time_zone: Annotated[
        str,
        pydantic.Field(
            min_length=1,
            max_length=64,
            pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$",
            description="IANA time zone, e.g. Europe/Berlin",
        ),
    ]
    description: Annotated[str, pydantic.Field(max_length=4096)] = ""
    roles: Annotated[
        list[Role],
        pydantic.Field(
            min_length=1,
            max_length=32,
            json_schema_extra=base.keyed("name"),
        ),
    ]
    overrides: Annotated[list[Override], pydantic.Field(max_length=200)] = []
    members: Annotated[
        list[Member],
        pydantic.Field(
            max_length=500,
            json_schema_extra=base.keyed("name"),
        ),
    ] = []


class RoleStatus(base.Model):
    role: base.Identifier
    on_call: Annotated[list[base.Person], pydantic.Field(max_length=10)] = []
    until: dt.datetime | None = None
    next: Annotated[list[base.Person], pydantic.Field(max_length=10)] = []


class Gap(base.Model):
    """A time in the look-ahead window where a role has nobody and no restriction meant it."""

    role: base.Identifier
    start: dt.datetime
    end: dt.datetime


class OnCallScheduleStatus(base.ObjectStatus):
    on_call: Annotated[
        str,
        pydantic.Field(max_length=1024, description="Who is on call now, per role, for kubectl get"),
    ] = ""
    next_handoff: dt.datetime | None = None
    next_on_call: Annotated[
        str,
        pydantic.Field(max_length=1024, description="Who takes over at the next handoff, per role that changes then"),
    ] = ""
    roles: Annotated[list[RoleStatus], pydantic.Field(max_length=32)] = []
    gaps: Annotated[list[Gap], pydantic.Field(max_length=100)] = []


class OnCallSchedule(base.Model):
    api_version: str = "oncall.dev/v1alpha1"
    kind: str = "OnCallSchedule"
    metadata: base.Metadata = base.Metadata()
    spec: OnCallScheduleSpec
    status: OnCallScheduleStatus | None = None
