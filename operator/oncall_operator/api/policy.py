"""EscalationPolicy: how an Incident reaches people, and how far it climbs when nobody answers.

Shaped after PagerDuty escalation rules (delays, targets, loops, acknowledgement timeout) and
Grafana OnCall escalation chains (wait / notify on-call from schedule / repeat / notify if
time in range / trigger webhook). Levels start at an elapsed time since the Incident was
triggered (the handbook: L1 at 0, L2 at 15m, L3 at 30m); the top level can repeat a
status-update reminder and open a war room. Severity rules say how fast and through which
channels; routes send an Incident to a team's role while that role is on call (business
hours), and to the levels' targets otherwise.
"""

import enum
from typing import Annotated

import pydantic

from oncall_operator.api import base


class ScheduleTarget(base.Model):
    name: base.Name
    role: base.Identifier


class Target(base.Model):
    """Exactly one of: whoever a schedule's role has on call, a person, or a team channel."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "[has(self.schedule), has(self.user), has(self.team)].filter(x, x).size() == 1",
                "a target names exactly one of schedule, user or team",
            ),
        )
    )

    schedule: ScheduleTarget | None = None
    user: base.Person | None = None
    team: base.Identifier | None = None


class Unless(enum.StrEnum):
    ACKNOWLEDGED = "Acknowledged"
    RESOLVED = "Resolved"


class Level(base.Model):
    """A step of the chain; it fires at ``after`` unless the Incident is already ``unless``."""

    name: base.Identifier
    after: Annotated[
        base.Duration,
        pydantic.Field(description="Elapsed time since trigger at which this level starts"),
    ]
    targets: Annotated[list[Target], pydantic.Field(min_length=1, max_length=20)]
    channels: Annotated[
        list[base.Identifier],
        pydantic.Field(
            max_length=10,
            description="Channel names (spec.channels) to notify at this level; empty means the severity's channels",
        ),
    ] = []
    status_update_every: Annotated[
        base.Duration | None,
        pydantic.Field(description="Repeat a status-update reminder at this cadence while unresolved"),
    ] = None
    war_room: Annotated[bool, pydantic.Field(description="Open the war room (spec.warRoom) when this level starts")] = (
        False
    )
    unless: Annotated[
        Unless,
        pydantic.Field(description="Skip this level once the Incident is Acknowledged (default) or only once Resolved"),
    ] = Unless.ACKNOWLEDGED


class ChannelType(enum.StrEnum):
    SLACK = "Slack"
    PAGER_DUTY = "PagerDuty"
    EMAIL = "Email"
    WEBHOOK = "Webhook"
    TWILIO = "Twilio"
    """SMS and voice calls through Twilio's REST API; the Secret holds ``AccountSid:AuthToken``."""
    SLACK_BOT = "SlackBot"
    """Slack's Web API with a bot token (``xoxb-...``): direct messages to people, posts to a channel."""


class EmailSettings(base.Model):
    smtp_host: Annotated[str, pydantic.Field(min_length=1, max_length=253)]
    smtp_port: Annotated[int, pydantic.Field(ge=1, le=65535)] = 587
    start_tls: bool = True
    sender: Annotated[str, pydantic.Field(alias="from", min_length=3, max_length=254)]
    to: Annotated[
        list[str],
        pydantic.Field(max_length=50, description="Fixed recipients, besides the paged people's own addresses"),
    ] = []


class TwilioSettings(base.Model):
    sender: Annotated[
        str,
        pydantic.Field(
            alias="from",
            max_length=16,
            pattern=r"^\+[1-9][0-9]{6,14}$",
            description="The Twilio phone number (E.164) that sends the SMS and places the calls",
        ),
    ]


class SlackBotSettings(base.Model):
    channel: Annotated[
        str | None,
        pydantic.Field(
            max_length=64,
            pattern=r"^[CG][A-Z0-9]{2,63}$",
            description="Channel ID to post to when the channel is a level's or a team's; "
            "without it each paged person gets a direct message",
        ),
    ] = None


class Channel(base.Model):
    """A way to reach people. Credentials and URLs come from a Secret, never from the spec."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "self.type != 'Email' || has(self.email)",
                "an Email channel needs 'email' settings",
                ".email",
            ),
            (
                "self.type == 'Email' || has(self.secretRef)",
                "this channel type needs 'secretRef' (webhook URL, routing key, bot token or Twilio credentials)",
                ".secretRef",
            ),
            (
                "self.type != 'Twilio' || has(self.twilio)",
                "a Twilio channel needs 'twilio' settings (the 'from' number)",
                ".twilio",
            ),
        )
    )

    name: base.Identifier
    type: ChannelType
    secret_ref: Annotated[
        base.SecretKeyRef | None,
        pydantic.Field(
            description="Slack: webhook URL; PagerDuty: routing key; Webhook: URL; "
            "Email: 'username:password' for SMTP auth; SlackBot: the bot token (xoxb-...); "
            "Twilio: 'AccountSid:AuthToken'"
        ),
    ] = None
    email: EmailSettings | None = None
    twilio: TwilioSettings | None = None
    slack_bot: SlackBotSettings | None = None
    endpoint: Annotated[
        str | None,
        pydantic.Field(
            max_length=2048,
            pattern=r"^https?://[^\s]+$",
            description="PagerDuty: the Events API v2 URL (default https://events.pagerduty.com/v2/enqueue; "
            "EU accounts: https://events.eu.pagerduty.com/v2/enqueue); Twilio: the REST API base "
            "(default https://api.twilio.com); SlackBot: the Web API base (default https://slack.com/api)",
        ),
    ] = None


class Response(enum.StrEnum):
    PAGE = "Page"
    NOTIFY = "Notify"


class SeverityRule(base.Model):
    """The severity guide: how fast a response is due, through which channels, paged or not."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "!(has(self.responseTime) && has(self.nextBusinessDay))",
                "set at most one of responseTime and nextBusinessDay",
                ".responseTime",
            ),
        )
    )

    severity: base.Severity
    response: Annotated[
        Response,
        pydantic.Field(
            description="Page: escalate through the levels until acknowledged; Notify: send once, no escalation"
        ),
    ]
    response_time: base.Duration | None = None
    next_business_day: Annotated[
        bool | None,
        pydantic.Field(description="Response due by the start of the next business day"),
    ] = None
    channels: Annotated[list[base.Identifier], pydantic.Field(min_length=1, max_length=10)]


class BusinessHours(base.Model):
    time_zone: Annotated[str, pydantic.Field(min_length=1, max_length=64)]
    days: Annotated[
        list[base.Weekday],
        pydantic.Field(min_length=1, max_length=7, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = [base.Weekday.MON, base.Weekday.TUE, base.Weekday.WED, base.Weekday.THU, base.Weekday.FRI]
    from_: Annotated[base.ClockTime, pydantic.Field(alias="from")] = "08:00"
    to: base.ClockTime = "18:00"


class Team(base.Model):
    """A team that runbooks and targets name, and how to reach it."""

    name: base.Identifier
    email: base.Email | None = None
    channel: Annotated[
        base.Identifier | None,
        pydantic.Field(description="A channel of spec.channels that reaches the team"),
    ] = None


class Link(base.Model):
    """A tool the responder opens (Grafana, Prometheus, Alertmanager, Loki, Jaeger...), shown in every message.

    ``url`` may hold placeholders filled in (URL-encoded) per Incident: ``{namespace}``, ``{name}``
    (the Incident), ``{alertname}``, ``{severity}``, ``{targetKind}``, ``{targetNamespace}``, ``{targetName}``.
    """

    name: Annotated[str, pydantic.Field(min_length=1, max_length=64)]
    url: Annotated[str, pydantic.Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s<>|]+$")]


class WarRoom(base.Model):
    """Where a ``warRoom: true`` level gathers people: a Slack channel the bot opens, and/or a call bridge."""

    bridge_url: Annotated[
        str | None,
        pydantic.Field(
            alias="bridgeURL",
            min_length=8,
            max_length=2048,
            pattern=r"^https?://[^\s<>|]+$",
            description="A call bridge announced to everyone paged; placeholders as in links, e.g. "
            "https://meet.example.com/inc-{name}",
        ),
    ] = None
    slack_channel: Annotated[
        bool,
        pydantic.Field(
            description="Open a Slack channel inc-<incident> through the policy's SlackBot channel, "
            "invite the people paged and post the incident there"
        ),
    ] = True


class Route(base.Model):
    """Incidents whose labels match go to ``target`` while it has someone on call, else to the levels."""

    name: base.Identifier
    match: Annotated[dict[str, str], pydantic.Field(min_length=1, max_length=10)]
    target: Target


class Repeat(base.Model):
    times: Annotated[
        int,
        pydantic.Field(
            ge=0,
            le=10,
            description="How often to run the levels again from the first when nobody acknowledged",
        ),
    ] = 0
    after: Annotated[
        base.Duration | None,
        pydantic.Field(
            description="Pause after the last level before repeating; "
            "default: the last level's distance from the one before"
        ),
    ] = None


class Noise(base.Model):
    """Noise control: how many pages a person gets an hour, and when a re-firing alert group is a flap."""

    max_pages_per_person_per_hour: Annotated[
        int | None,
        pydantic.Field(
            ge=1,
            le=1000,
            description="At most this many messages per person per rolling hour from this policy's Incidents; "
            "the excess is held and sent as one summary when there is room (unset: no cap)",
        ),
    ] = None
    flap_resolutions: Annotated[
        int,
        pydantic.Field(
            ge=1,
            le=100,
            description="An alert group that fires again after this many resolutions within flapWindow is flapping: "
            "its Incident stays open with a flap count instead of reopening and paging",
        ),
    ] = 2
    flap_window: Annotated[
        base.Duration, pydantic.Field(description="The window the resolutions of flapResolutions are counted in")
    ] = "30m"


class EscalationPolicySpec(base.Model):
    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            (
                "self.levels[0].after == '0' || self.levels[0].after.matches('^(0+[smhdw])+$')",
                "the first level must start at 0 (spec.levels[0].after)",
                ".levels",
            ),
            (
                "self.levels.all(l, !has(l.channels) || l.channels.all(c, self.channels.exists(ch, ch.name == c)))",
                "every level channel must be declared in spec.channels",
                ".levels",
            ),
            (
                "self.severities.all(s, s.channels.all(c, self.channels.exists(ch, ch.name == c)))",
                "every severity channel must be declared in spec.channels",
                ".severities",
            ),
        )
    )

    description: Annotated[str, pydantic.Field(max_length=4096)] = ""
    ack_timeout: Annotated[
        base.Duration, pydantic.Field(description="Acknowledgement is due this long after a page")
    ] = "5m"
    levels: Annotated[
        list[Level],
        pydantic.Field(
            min_length=1,
            max_length=10,
            json_schema_extra=base.keyed("name"),
        ),
    ]
    repeat: Repeat = Repeat()
    channels: Annotated[
        list[Channel],
        pydantic.Field(
            min_length=1,
            max_length=20,
            json_schema_extra=base.keyed("name"),
        ),
    ]
    severities: Annotated[
        list[SeverityRule],
        pydantic.Field(
            min_length=1,
            max_length=3,
            json_schema_extra=base.keyed("severity"),
        ),
    ]
    teams: Annotated[
        list[Team],
        pydantic.Field(
            max_length=100,
            json_schema_extra=base.keyed("name"),
        ),
    ] = []
    routes: Annotated[list[Route], pydantic.Field(max_length=50)] = []
    business_hours: BusinessHours | None = None
    links: Annotated[
        list[Link],
        pydantic.Field(max_length=10, json_schema_extra=base.keyed("name")),
    ] = []
    war_room: Annotated[WarRoom, pydantic.Field(description="How a level with warRoom: true opens the war room")] = (
        WarRoom()
    )
    noise: Annotated[Noise, pydantic.Field(description="Per-person page budget and flap detection")] = Noise()


class EscalationPolicyStatus(base.ObjectStatus):
    pass


class EscalationPolicy(base.Model):
    api_version: str = "oncall.dev/v1alpha1"
    kind: str = "EscalationPolicy"
    metadata: base.Metadata = base.Metadata()
    spec: EscalationPolicySpec
    status: EscalationPolicyStatus | None = None
