"""People reached by their own notification rules, in virtual time (ticks every 30 s, never sleeps).

The handbook's policy with a Twilio and a Slack bot channel; the primary (Ada) wants a Slack DM at
once, an SMS at 2m and a call at 5m; the secondary (Bob) an SMS at once and a call at 3m; the CTO
a call at once and an SMS at 10m. Each rule step is keyed and sent once; an acknowledgement
stops the rest (on the CTO's ``unless: Resolved`` level, only the resolution does).
"""

import datetime as dt
import pathlib

import pydantic
import pytest
import yaml

from oncall_operator.api import incident, policy, schedule
from oncall_operator.domain import checks, escalation, lifecycle, people

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
BASE = policy.EscalationPolicySpec.model_validate(
    yaml.safe_load((EXAMPLES / "escalation-policy.yaml").read_text())["spec"]
)
HOOKS_ONLY = BASE.model_copy(
    update={
        "channels": [
            c for c in BASE.channels if c.type not in (policy.ChannelType.TWILIO, policy.ChannelType.SLACK_BOT)
        ]
    }
)
SPEC = BASE.model_copy(
    update={
        "channels": [
            *HOOKS_ONLY.channels,
            policy.Channel.model_validate(
                {
                    "name": "phone",
                    "type": "Twilio",
                    "secretRef": {"name": "t", "key": "k"},
                    "twilio": {"from": "+15005550006"},
                }
            ),
            policy.Channel.model_validate(
                {"name": "slack-bot", "type": "SlackBot", "secretRef": {"name": "s", "key": "k"}}
            ),
        ]
    }
)
T0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)


def member(name: str, *rules: tuple[str, str]) -> schedule.Member:
    return schedule.Member.model_validate(
        {
            "name": name,
            "email": "x@example.com",
            "slack": "U0" + name.upper()[:3] + "001",
            "phone": "+4930123456",
            "notificationRules": [{"after": a, "method": m} for a, m in rules],
        }
    )


ADA = member("Ada", ("0", "Slack"), ("2m", "SMS"), ("5m", "Voice"))
BOB = member("Bob", ("0", "SMS"), ("3m", "Voice"))
CTO = member("CTO / Engineering Manager", ("0", "Voice"), ("10m", "SMS"))
PEOPLE = {"primary": ADA, "secondary": BOB}


def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
    if target.schedule is not None:
        return [PEOPLE[target.schedule.role]] if target.schedule.role in PEOPLE else []
    by_name = {m.name: m for m in (ADA, BOB, CTO)}
    return [by_name.get(target.user or "") or escalation.Recipient(name=target.user or target.team or "?")]


Sent = tuple[float, str, int, str, str, str]


def simulate(actions: dict[float, str] | None = None, minutes: int = 40, restart_at: float | None = None) -> list[Sent]:
    """(minute, kind, level, who, method or the channels) of everything sent."""
    inc_spec = incident.IncidentSpec(title="API error rate above SLO", severity="critical")
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, T0))
    sent: list[Sent] = []
    for tick in range(minutes * 2 + 1):
        now, minute = T0 + dt.timedelta(seconds=30 * tick), tick / 2
        assert inc.status is not None
        if (act := (actions or {}).get(minute)) is not None:
            inc.status.phase = incident.Phase(act)
        if minute == restart_at:
            inc = incident.Incident.model_validate(inc.model_dump(mode="json", by_alias=True))
        decision = escalation.decide(SPEC, inc, now, resolve)
        for s in decision.sends:
            sent.append(
                (minute, s.kind, s.level, ", ".join(r.name for r in s.recipients), s.method, "+".join(s.channels))
            )
        for n in decision.status.escalation.notifications:
            n.result = "Delivered" if n.result == "Pending" else n.result
        inc = inc.model_copy(update={"status": decision.status})
    return sent


def personal(sent: list[Sent]) -> list[tuple[float, int, str, str, str]]:
    return [(m, lvl, who, method, ch) for m, _, lvl, who, method, ch in sent if method]


CTO_NAME = CTO.name


def test_nobody_answers_each_person_is_reached_by_their_own_rules() -> None:
    assert personal(simulate()) == [
        (0, 1, "Ada", "Slack", "slack-bot"),
        (2, 1, "Ada", "SMS", "phone"),
        (5, 1, "Ada", "Voice", "phone"),
        (15, 2, "Ada", "Slack", "slack-bot"),  # level 2 pages the primary again, by her rules
        (15, 2, "Bob", "SMS", "phone"),  # and the secondary as a person
        (17, 2, "Ada", "SMS", "phone"),
        (18, 2, "Bob", "Voice", "phone"),
        (20, 2, "Ada", "Voice", "phone"),
        (30, 3, CTO_NAME, "Voice", "phone"),  # level 3 reaches the CTO
        (40, 3, CTO_NAME, "SMS", "phone"),
    ]


def test_an_ack_mid_rule_stops_the_rest() -> None:
    sent = simulate(actions={3: "Acknowledged", 32: "Resolved"})
    assert personal(sent) == [
        (0, 1, "Ada", "Slack", "slack-bot"),
        (2, 1, "Ada", "SMS", "phone"),
        # acknowledged at 3: no call at 5, no level 2; level 3 ("unless resolved") still informs the CTO
        (30, 3, CTO_NAME, "Voice", "phone"),
    ]
    acks = [s for s in sent if s[1] in ("acknowledge", "resolve")]
    # told on the policy channels paged, never by SMS, call or DM; the resolution to everybody paged
    assert acks == [
        (3, "acknowledge", 1, "Ada", "", "pagerduty"),
        (32, "resolve", 3, f"Ada, {CTO_NAME}", "", "pagerduty+slack+email"),
    ]


def test_resolved_mid_rule_on_an_unless_resolved_level_stops_the_rest() -> None:
    sent = simulate(actions={3: "Acknowledged", 35: "Resolved"})
    assert [p for p in personal(sent) if p[1] == 3] == [(30, 3, CTO_NAME, "Voice", "phone")]  # no SMS at 40


def test_a_restart_mid_rule_neither_repeats_nor_skips_a_step() -> None:
    assert simulate(restart_at=3.5) == simulate()


def test_rule_steps_missed_while_no_operator_ran_are_sent_once() -> None:
    inc_spec = incident.IncidentSpec(title="x", severity="critical")
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, T0))
    first = escalation.decide(SPEC, inc, T0, resolve)
    later = escalation.decide(
        SPEC, inc.model_copy(update={"status": first.status}), T0 + dt.timedelta(minutes=6), resolve
    )
    assert [(s.method, s.level) for s in later.sends if s.method] == [("SMS", 1), ("Voice", 1)]
    keys = [n.key.split("@")[0] for n in later.status.escalation.notifications]
    ada = people.person_key("Ada")
    assert keys[:2] == ["page/L1/loop0", f"page/L1/loop0/{ada}/r1"]
    assert all(people.is_rule_step(k) for k in keys[2:] if k.startswith("page/L1/loop0/"))
    again = escalation.decide(
        SPEC, inc.model_copy(update={"status": later.status}), T0 + dt.timedelta(minutes=6), resolve
    )
    assert again.sends == ()


def test_rule_steps_stop_at_the_status_budget() -> None:
    inc_spec = incident.IncidentSpec(title="x", severity="critical")
    status = lifecycle.opened(inc_spec, T0)
    filler = incident.Notification(key="x", at=T0, level=0, channel="c", kind="note", result="Delivered")
    status.escalation.notifications = [filler] * people.RULE_STEPS_BUDGET
    decision = escalation.decide(SPEC, incident.Incident(spec=inc_spec, status=status), T0, resolve)
    assert [s.method for s in decision.sends] == [""]  # the level's own page still goes out


def test_a_method_without_a_channel_is_skipped_and_reported() -> None:
    sched = schedule.OnCallScheduleSpec.model_validate(
        {
            "timeZone": "UTC",
            "roles": [
                {
                    "name": "primary",
                    "layers": [{"name": "l", "rotation": {"participants": ["Ada"], "start": "2026-01-05"}}],
                }
            ],
            "members": [ADA.wire()],
        }
    )
    # the handbook has no Twilio and no bot: Slack falls back to the webhook (a mention), SMS and Voice are skipped
    assert [(s.method, s.channel) for s in people.rule_steps(HOOKS_ONLY, [ADA], T0)] == [
        (schedule.ContactMethod.SLACK, "slack")
    ]
    verdict = checks.check_policy(HOOKS_ONLY, {"valeo-oncall": sched}, {})
    assert not verdict.ok
    assert "spec.members[0].notificationRules[1].method: SMS needs a Twilio channel" in verdict.message


def test_person_keys_are_short_stable_and_tell_people_apart() -> None:
    assert people.person_key("Bob") != people.person_key("bob")
    assert people.person_key("CTO / Engineering Manager").startswith("cto-engineering-manager-")
    assert len(people.person_key("x" * 128)) <= 39
    assert people.person_key("\u00e9\u00e9").startswith("person-")
    assert people.is_rule_step(f"page/L2/loop0/{people.person_key('Bob')}/r1@1765000000")
    assert not people.is_rule_step("page/L2/loop0@1765000000")


@pytest.mark.parametrize(
    "member",
    [
        {"name": "Ada", "phone": "+49-XXX-XXXXXXX"},
        {"name": "Ada", "phone": "+4930<Dial>1"},
        {"name": "Ada", "slack": "<!channel>"},
        {"name": "Ada", "email": "a@b.c>, x@evil"},
        {"name": "Ada", "notificationRules": [{"method": "Pigeon"}]},
        {"name": "Ada", "notificationRules": [{"method": "SMS", "after": "soon"}]},
        {"name": "Ada", "pagerDutyRoutingKey": {"name": "../etc", "key": "k"}},
        {"name": "Ada", "notificationRules": [{"method": "SMS"}] * 6},
    ],
)
def test_hostile_contact_fields_are_refused(member: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        schedule.Member.model_validate(member)
