"""The escalation engine on the handbook's policy, in virtual time (ticks, never sleeps).

Each scenario drives ``escalation.decide`` every 30 virtual seconds for two hours, applies
the people's actions (acknowledge, resolve) at their minute, and compares what was sent
with the handbook: L1 at 0, acknowledge within 5 min, L2 at 15, L3 at 30 with a war room and
status updates every 15 min, severity rules, routes to business-hours team support.
"""

import datetime as dt
import pathlib
from typing import Any

import pytest
import yaml

from oncall_operator.api import incident, policy
from oncall_operator.domain import delivery, escalation, lifecycle

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
POLICY = policy.EscalationPolicySpec.model_validate(
    yaml.safe_load((EXAMPLES / "escalation-policy.yaml").read_text())["spec"]
)
T0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)  # a Tuesday night: team support is off
ON_CALL = {"primary": "DevOps Lead", "secondary": "CTO / Engineering Manager", "crm-support": "CRM Team Lead"}


def resolver(business_hours: bool = False) -> escalation.Resolver:
    def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
        if target.schedule is not None:
            if target.schedule.role.endswith("-support") and not business_hours:
                return []
            return [escalation.Recipient(name=ON_CALL[target.schedule.role])]
        return [escalation.Recipient(name=target.user or target.team or "?")]

    return resolve


def simulate(
    severity: str = "critical",
    actions: dict[int, str] | None = None,
    labels: dict[str, str] | None = None,
    spec: policy.EscalationPolicySpec = POLICY,
    minutes: int = 120,
    business_hours: bool = False,
    restart_at: int | None = None,
) -> list[tuple[float, str, int, tuple[str, ...], str]]:
    inc_spec = incident.IncidentSpec(
        title="API error rate above SLO",
        severity=severity,
        source=incident.Source(type=incident.SourceType.ALERTMANAGER, labels=labels or {}),
    )
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, T0))
    sent: list[tuple[float, str, int, tuple[str, ...], str]] = []
    actions = actions or {}
    for tick in range(minutes * 2 + 1):
        now = T0 + dt.timedelta(seconds=30 * tick)
        minute = tick / 2
        assert inc.status is not None
        if minute in actions:
            act = actions[minute]
            inc.status.phase = incident.Phase(act)
            if act == "Acknowledged":
                inc.status.acknowledged_by, inc.status.acknowledged_at = "devops-lead", now
        if restart_at is not None and minute == restart_at:
            # a new operator process: only what was written to the Incident survives
            inc = incident.Incident.model_validate(inc.model_dump(mode="json", by_alias=True))
        decision = escalation.decide(spec, inc, now, resolver(business_hours))
        for send in decision.sends:
            who = ", ".join(r.name for r in send.recipients)
            sent.append((minute, send.kind, send.level, send.channels, who))
        for n in decision.status.escalation.notifications:
            n.result = "Delivered" if n.result == "Pending" else n.result
        inc = inc.model_copy(update={"status": decision.status})
    return sent


PD, SLACK, EMAIL = ("pagerduty",), ("slack",), ("email",)
ALL3 = ("pagerduty", "slack", "email")
L2_CHANNELS = ("pagerduty", "slack")
PAGED = ("pagerduty", "slack", "email")
PRIMARY, BOTH, CTO = "DevOps Lead", "DevOps Lead, CTO / Engineering Manager", "CTO / Engineering Manager"


def test_nobody_answers_l2_at_15_l3_at_30_then_status_updates_every_15() -> None:
    assert simulate(minutes=75) == [
        (0, "page", 1, PD, PRIMARY),
        (5, "reminder", 1, PD, PRIMARY),
        (15, "page", 2, L2_CHANNELS, BOTH),
        (20, "reminder", 2, L2_CHANNELS, BOTH),
        (30, "page", 3, ALL3, CTO),
        (30, "war-room", 3, ("slack-bot",), BOTH),  # the bot opens #inc-..., invites everybody paged
        (45, "status-update", 3, ALL3, CTO),
        (60, "status-update", 3, ALL3, CTO),
        (75, "status-update", 3, ALL3, CTO),
    ]


def test_ack_at_4_stops_paging_and_resolve_before_30_ends_it() -> None:
    assert simulate(actions={4: "Acknowledged", 20: "Resolved"}) == [
        (0, "page", 1, PD, PRIMARY),
        (4, "acknowledge", 1, PD, "DevOps Lead"),
        (20, "resolve", 1, PD, "DevOps Lead"),
    ]


def test_acknowledged_but_unresolved_at_30_informs_the_cto_as_the_handbook_says() -> None:
    # Handbook level 3: "Wenn nicht resolved" - it fires on an acknowledged Incident too.
    sent = simulate(actions={4: "Acknowledged", 50: "Resolved"})
    assert sent == [
        (0, "page", 1, PD, PRIMARY),
        (4, "acknowledge", 1, PD, "DevOps Lead"),
        (30, "page", 3, ALL3, CTO),
        (30, "war-room", 3, ("slack-bot",), BOTH),  # the bot opens #inc-..., invites everybody paged
        (45, "status-update", 3, ALL3, CTO),
        (50, "resolve", 3, ALL3, BOTH),  # everybody paged: each one's PagerDuty alert is resolved
    ]


def test_resolve_stops_the_status_updates() -> None:
    sent = simulate(actions={40: "Resolved"})
    assert [s[:2] for s in sent] == [
        (0, "page"),
        (5, "reminder"),
        (15, "page"),
        (20, "reminder"),
        (30, "page"),
        (30, "war-room"),
        (40, "resolve"),
    ]
    assert sent[-1][3] == ("pagerduty", "slack", "email")  # told on every channel that was paged


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("warning", [(0, "notify", 1, SLACK, PRIMARY), (60, "reminder", 1, SLACK, PRIMARY)]),
        ("info", []),  # Tuesday 23:00 in Berlin: mailed when Wednesday's business hours start (test_business_days)
    ],
)
def test_severity_guide_warning_slack_1h_info_email_only(severity: str, expected: list[Any]) -> None:
    assert simulate(severity=severity) == expected


def test_warning_acknowledged_within_the_hour_gets_no_reminder() -> None:
    assert simulate(severity="warning", actions={30: "Acknowledged"}) == [
        (0, "notify", 1, SLACK, PRIMARY),
        (30, "acknowledge", 1, SLACK, PRIMARY),
    ]


@pytest.mark.parametrize(
    ("business_hours", "first"),
    [(True, "CRM Team Lead"), (False, PRIMARY)],
    ids=["inside-business-hours-team-support", "outside-business-hours-primary"],
)
def test_team_labels_route_level_1_to_team_support_while_it_is_on_call(business_hours: bool, first: str) -> None:
    sent = simulate(labels={"team": "crm"}, business_hours=business_hours, minutes=1)
    assert sent == [(0, "page", 1, PD, first)]


def test_restart_mid_escalation_neither_repeats_nor_skips() -> None:
    assert simulate(minutes=46, restart_at=16) == simulate(minutes=46)


def test_steps_missed_while_no_operator_ran_are_sent_once_on_the_next_tick() -> None:
    spec = POLICY
    inc_spec = incident.IncidentSpec(title="x", severity="critical")
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, T0))
    first = escalation.decide(spec, inc, T0, resolver())
    inc = inc.model_copy(update={"status": first.status})
    later = escalation.decide(spec, inc, T0 + dt.timedelta(minutes=61), resolver())
    kinds = [(s.kind, s.level) for s in later.sends]
    # L1's overdue reminder is moot once L2 is due; L2 and L3 page; one catch-up status update, not four
    assert kinds == [("page", 2), ("page", 3), ("war-room", 3), ("status-update", 3)]
    again = escalation.decide(
        spec, inc.model_copy(update={"status": later.status}), T0 + dt.timedelta(minutes=61), resolver()
    )
    assert again.sends == ()


def test_repeat_runs_the_chain_again_when_nobody_acknowledges() -> None:
    spec = POLICY.model_copy(
        update={
            "repeat": policy.Repeat(times=1, after="10m"),
            "levels": [
                lv.model_copy(update={"status_update_every": None, "unless": policy.Unless.ACKNOWLEDGED})
                for lv in POLICY.levels
            ],
        }
    )
    pages = [(m, lvl) for m, kind, lvl, _, _ in simulate(spec=spec, minutes=90) if kind == "page"]
    assert pages == [(0, 1), (15, 2), (30, 3), (40, 1), (55, 2), (70, 3)]


def two_levels(repeat: policy.Repeat) -> policy.EscalationPolicySpec:
    """L1 at 0, L2 at 30 s, an hour to acknowledge: the storm bench's policy."""
    levels = [
        lv.model_copy(update={"after": after, "status_update_every": None, "war_room": False})
        for lv, after in zip(POLICY.levels[:2], ("0s", "30s"), strict=True)
    ]
    return POLICY.model_copy(update={"levels": levels, "repeat": repeat, "ack_timeout": "1h"})


@pytest.mark.parametrize(
    ("repeat", "wake_after_l2"),
    [
        # the last loop has no next one: the next step is the overdue acknowledgement's reminder
        # (a wake at a loop that never comes made every such Incident look due, at each takeover too)
        (policy.Repeat(), dt.timedelta(seconds=30) + dt.timedelta(hours=1)),
        # a loop to come: its first level, a minute after L2 (the gap: max(L2 - L1, 1 min))
        (policy.Repeat(times=1), dt.timedelta(seconds=30) + dt.timedelta(minutes=1)),
        (policy.Repeat(times=1, after="5m"), dt.timedelta(seconds=30) + dt.timedelta(minutes=5)),
    ],
)
def test_after_the_last_level_the_next_step_is_the_next_loop_or_the_reminder(
    repeat: policy.Repeat, wake_after_l2: dt.timedelta
) -> None:
    spec = two_levels(repeat)
    inc_spec = incident.IncidentSpec(title="x", severity="critical")
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, T0))
    for at in (T0, T0 + dt.timedelta(seconds=30)):
        decision = escalation.decide(spec, inc, at, resolver())
        for n in decision.status.escalation.notifications:
            n.result = "Delivered"
        inc = inc.model_copy(update={"status": decision.status})
    assert [s.level for s in decision.sends] == [2]
    assert decision.status.escalation.next_step_at == T0 + wake_after_l2


def test_next_step_time_is_recorded_for_the_timer() -> None:
    inc_spec = incident.IncidentSpec(title="x", severity="critical")
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, T0))
    decision = escalation.decide(POLICY, inc, T0, resolver())
    assert decision.wake_at == T0 + delivery.LEASE  # the claim's lease ends first: look again then
    assert decision.status.escalation.next_step_at == T0 + dt.timedelta(minutes=5)
    assert [n.key for n in decision.status.escalation.notifications] == [f"page/L1/loop0@{int(T0.timestamp())}"]
    assert decision.status.escalation.notifications[0].result == "Pending"
