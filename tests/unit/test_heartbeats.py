"""Heartbeats as tables: which deliveries are beats (and whose), when a heartbeat is missed, and its Incident."""

import datetime as dt
from typing import Any

import pytest

from oncall_operator.api import heartbeat, incident
from oncall_operator.domain import alerts, heartbeats

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
OPERATOR = "oncall-system"
State = heartbeat.State


def hb(namespace: str = OPERATOR, name: str = "pipeline", **spec: Any) -> heartbeats.Heartbeat:
    spec.setdefault("escalationPolicyRef", {"name": "platform"})
    return heartbeats.Heartbeat(namespace, name, heartbeat.HeartbeatSpec.model_validate(spec))


def payload(status: str = "firing", **labels: str) -> alerts.Payload:
    labels = {"alertname": "Watchdog", **labels}
    return alerts.parse(
        {
            "version": "4",
            "groupKey": "{}:" + f'{{alertname="{labels["alertname"]}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "heartbeat",
            "groupLabels": {"alertname": labels["alertname"]},
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": status,
                    "labels": labels,
                    "annotations": {},
                    "startsAt": "2026-03-10T08:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": "w1",
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("delivery", "known", "beat", "heard"),
    [
        (payload(), [hb()], True, ["pipeline"]),
        (payload(), [], True, []),  # a Watchdog nobody hears is still no Incident
        (payload("resolved"), [hb()], True, []),  # a resolved Watchdog is no beat: its silence will page
        (payload(alertname="DeadMansSwitch"), [hb(alertName="DeadMansSwitch")], True, ["pipeline"]),
        (payload(alertname="KubePodCrashLooping"), [hb()], False, []),
        (payload(cluster="eu"), [hb(matchers=[{"label": "cluster", "value": "us"}])], True, []),
        (payload(cluster="eu"), [hb(matchers=[{"label": "cluster", "value": "eu"}])], True, ["pipeline"]),
        # hostile: a namespace user's Heartbeat hears only alerts about its own namespace
        (
            payload(alertname="KubePodCrashLooping", namespace="billing"),
            [hb("shop", alertName="KubePodCrashLooping")],
            False,
            [],
        ),
        (
            payload(alertname="KubePodCrashLooping", namespace="shop"),
            [hb("shop", alertName="KubePodCrashLooping")],
            True,
            ["pipeline"],
        ),
        (payload(), [hb("shop")], True, []),  # a Watchdog without namespace: not the shop's
    ],
)
def test_beats(delivery: alerts.Payload, known: list[heartbeats.Heartbeat], beat: bool, heard: list[str]) -> None:
    assert heartbeats.is_beat(delivery, known, OPERATOR) == beat
    assert [h.name for h in heartbeats.heard(delivery, known, OPERATOR)] == heard


S = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("timeout", "last", "now", "state", "deadline"),
    [
        ("5m", None, T0, State.WAITING, T0 + 300 * S),
        ("5m", None, T0 + 300 * S, State.MISSED, T0 + 300 * S),
        ("5m", T0 + 60 * S, T0 + 300 * S, State.ALIVE, T0 + 360 * S),
        ("5m", T0 + 60 * S, T0 + 360 * S, State.MISSED, T0 + 360 * S),
        ("20s", T0, T0 + 19 * S, State.ALIVE, T0 + 20 * S),
        ("1s", T0, T0 + 5 * S, State.ALIVE, T0 + 10 * S),  # never shorter than 10s
    ],
)
def test_look(timeout: str, last: dt.datetime | None, now: dt.datetime, state: State, deadline: dt.datetime) -> None:
    found = heartbeats.look(hb(timeout=timeout).spec, last, T0, now)
    assert (found.state, found.deadline) == (state, deadline)


def test_missed_opens_reopens_and_returned_resolves() -> None:
    h = hb()
    spec = heartbeats.incident_spec(h)
    assert spec.severity.value == "critical" and spec.source.labels["alertname"] == "HeartbeatMissed"
    opened = heartbeats.missed(spec, None, None, T0)
    assert opened is not None and opened.phase == incident.Phase.TRIGGERED
    assert heartbeats.missed(spec, opened, None, T0 + S) is None  # open already: nothing to write
    resolved = heartbeats.returned(opened, T0 + 30 * S, T0 + 31 * S)
    assert resolved is not None and resolved.phase == incident.Phase.RESOLVED and resolved.resolved_by == "heartbeat"
    assert heartbeats.returned(resolved, T0 + 30 * S, T0 + 32 * S) is None
    again = heartbeats.missed(spec, resolved, T0 + 30 * S, T0 + 90 * S)
    assert again is not None and again.phase == incident.Phase.REOPENED
    assert again.escalation.started_at == T0 + 90 * S and again.escalation.level == 0


def test_incident_names_are_valid_and_distinct() -> None:
    a, b = heartbeats.incident_name(hb("a", "x" * 253)), heartbeats.incident_name(hb("b", "x" * 253))
    assert a != b and len(a) <= 63


@pytest.mark.parametrize(
    ("spec", "policies", "reason"),
    [
        ({}, {"platform": object()}, "Accepted"),
        ({}, {}, "PolicyNotFound"),
        ({"timeout": "5s"}, {"platform": object()}, "TimeoutTooShort"),
    ],
)
def test_check(spec: dict[str, Any], policies: dict[str, object], reason: str) -> None:
    assert heartbeats.check(hb(**spec).spec, policies).reason == reason
