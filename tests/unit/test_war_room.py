"""The handbook's level 3 convenes a war room: where it is, recorded on the Incident and in every later page."""

import datetime as dt
import pathlib

import yaml

from oncall_operator.api import incident, policy
from oncall_operator.domain import checks, escalation, lifecycle, war_room

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
POLICY = policy.EscalationPolicySpec.model_validate(
    yaml.safe_load((EXAMPLES / "escalation-policy.yaml").read_text())["spec"]
)
T0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)


def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
    return [escalation.Recipient(name=target.user or (target.schedule.role if target.schedule else "?"))]


def at_level_3(spec: policy.EscalationPolicySpec) -> escalation.Decision:
    inc_spec = incident.IncidentSpec(title="API down", severity="critical")
    inc = incident.Incident.model_validate(
        {"metadata": {"name": "am-API.down", "namespace": "shop"}, "spec": inc_spec.wire()}
    )
    inc.status = lifecycle.opened(inc_spec, T0)
    return escalation.decide(spec, inc, T0 + dt.timedelta(minutes=31), resolve)


def test_level_3_opens_the_war_room_and_says_where() -> None:
    spec = POLICY.model_copy(
        update={"war_room": policy.WarRoom.model_validate({"bridgeURL": "https://meet.example.com/{name}"})}
    )
    decision = at_level_3(spec)
    room = "#inc-am-api-down https://meet.example.com/am-API.down"
    assert decision.status.war_room == room
    [entry] = [e.message for e in decision.status.timeline if e.type == "WarRoom"]
    assert entry.startswith(f"War room {room}. -> primary, secondary")
    page3 = next(s for s in decision.sends if s.kind == "page" and s.level == 3)
    assert page3.text == f"Level 3 (level-3). War room: {room}."
    [opening] = [s for s in decision.sends if s.kind == "war-room"]
    assert opening.channels == ("slack-bot",) and [r.name for r in opening.recipients] == [
        "primary",
        "secondary",
        "CTO / Engineering Manager",
    ]


def test_without_a_bot_or_a_bridge_the_policy_is_not_ready() -> None:
    spec = POLICY.model_copy(update={"war_room": policy.WarRoom(slack_channel=False)})
    assert (
        war_room.place(
            spec,
            incident.Incident.model_validate({"metadata": {"name": "x"}, "spec": {"title": "t", "severity": "info"}}),
        )
        == ""
    )
    bridge_only = spec.model_copy(
        update={"war_room": policy.WarRoom.model_validate({"bridgeURL": "https://m.io/{name}", "slackChannel": False})}
    )
    assert [e.message for e in at_level_3(bridge_only).status.timeline if e.type == "WarRoom"] == [
        "https://m.io/am-API.down"
    ]
    verdict = checks.check_policy(spec, {}, {})
    assert "spec.levels[2].warRoom: needs a SlackBot channel" in verdict.message


def test_slack_channel_names_follow_slacks_rule() -> None:
    assert war_room.slack_name("Am-API.Down_2") == "inc-am-api-down_2"
    assert len(war_room.slack_name("x" * 300)) == 80
