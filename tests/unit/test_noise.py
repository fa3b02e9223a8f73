"""Noise control as tables: when an alert group is flapping (the page budget: ``test_page_budget.py``)."""

import datetime as dt

import pytest

from oncall_operator.api import incident, policy
from oncall_operator.domain import alert_incident, delivery, escalation, noise
from tests.unit.test_alerts import POLICY, alert, at, opened, parsed

Phase = incident.Phase
T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


def m(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def entries(*spec: tuple[str, float]) -> list[incident.TimelineEntry]:
    return [incident.TimelineEntry(at=m(minute), type=kind, message="") for kind, minute in spec]


@pytest.mark.parametrize(
    ("timeline", "now", "flapping"),
    [
        (entries(), 10, False),
        (entries(("Resolved", 5)), 10, False),
        (entries(("Resolved", 5), ("Reopened", 6), ("Resolved", 8)), 10, True),
        (entries(("Resolved", 5), ("Reopened", 6), ("Resolved", 8)), 36, False),  # the first is 31 minutes old
        (entries(("Resolved", 5), ("Reopened", 6), ("Resolved", 8)), 35, True),  # exactly at the window's edge
        (entries(("Triggered", 1), ("AlertFiring", 2), ("Resolved", 8)), 10, False),
    ],
)
def test_flapping(timeline: list[incident.TimelineEntry], now: float, flapping: bool) -> None:
    assert noise.flapping(timeline, m(now)) == flapping


def delivered(st: incident.IncidentStatus) -> incident.IncidentStatus:
    """Every claimed send recorded Delivered, as the executor does after sending (else it is sent again)."""
    for n in st.escalation.notifications:
        if n.result == delivery.PENDING:
            delivery.settle(n, True, "ok")
    return st


def test_a_flapping_group_stays_one_incident_and_pages_once() -> None:
    spec, st = opened()
    resolve = lambda t, now: [escalation.Recipient(name="Ada")]  # noqa: E731
    first = escalation.decide(POLICY, incident.Incident(spec=spec, status=st), T0, resolve)
    pages = [s.key for s in first.sends]
    st = delivered(first.status)
    rounds = [(1, 2, "f2"), (3, 4, "f3"), (5, 6, "f4"), (7, 8, "f5")]
    fired = {"fp": "f1"}
    for down, up, fp in rounds:
        # each round resolves the alert that fired last (a resolve of an alert never seen firing closes nothing)
        st = alert_incident.record(spec, st, parsed("resolved", [alert("resolved", **fired)]), at(down))
        fired = {"fp": fp, "starts": at(up).isoformat()}
        assert st is not None and st.phase == Phase.RESOLVED
        st = escalation.decide(POLICY, incident.Incident(spec=spec, status=st), at(down), resolve).status
        st = alert_incident.record(spec, st, parsed(alerts_=[alert(fp=fp, starts=at(up).isoformat())]), at(up))
        assert st is not None
        decided = escalation.decide(POLICY, incident.Incident(spec=spec, status=st), at(up), resolve)
        pages += [s.key for s in decided.sends if s.kind == "page"]
        st = delivered(decided.status)
    # the first refire reopens and pages; from the second on it flaps: no reopening, no page
    assert [e.type for e in st.timeline].count("Reopened") == 1
    assert st.flaps == 3 and st.phase == Phase.TRIGGERED and st.occurrences == 5
    assert len(pages) == 2


@pytest.mark.parametrize(
    ("noise_spec", "timeline", "now", "flapping"),
    [
        # today's defaults, from a policy that says nothing
        ({}, entries(("Resolved", 5), ("Resolved", 8)), 10, True),
        # three resolutions needed: two are a reopening
        ({"flapResolutions": 3}, entries(("Resolved", 5), ("Resolved", 8)), 10, False),
        ({"flapResolutions": 3}, entries(("Resolved", 2), ("Resolved", 5), ("Resolved", 8)), 10, True),
        # a 5-minute window: the resolution at minute 2 is too old at minute 10
        ({"flapWindow": "5m"}, entries(("Resolved", 2), ("Resolved", 8)), 10, False),
        ({"flapWindow": "2h", "flapResolutions": 2}, entries(("Resolved", 2), ("Resolved", 8)), 100, True),
        ({"flapResolutions": 1}, entries(("Resolved", 8)), 10, True),
    ],
)
def test_flap_thresholds_per_policy(
    noise_spec: dict[str, object], timeline: list[incident.TimelineEntry], now: float, flapping: bool
) -> None:
    spec = POLICY.model_copy(update={"noise": policy.Noise.model_validate(noise_spec)})
    flap = noise.Flap.of(spec)
    assert noise.flapping(timeline, m(now), flap.resolutions, flap.window) == flapping


def test_the_policy_defaults_are_todays() -> None:
    assert noise.Flap.of(POLICY) == noise.Flap.of(None) == noise.DEFAULT_FLAP
    assert (noise.DEFAULT_FLAP.resolutions, noise.DEFAULT_FLAP.window) == (2, dt.timedelta(minutes=30))


def test_a_policy_needing_three_resolutions_reopens_on_the_second() -> None:
    spec, st = opened()
    strict = noise.Flap(3, dt.timedelta(minutes=30))
    fired = {"fp": "f1"}
    for down, up, fp in [(1, 2, "f2"), (3, 4, "f3"), (5, 6, "f4")]:
        st = alert_incident.record(spec, st, parsed("resolved", [alert("resolved", **fired)]), at(down), flap=strict)
        fired = {"fp": fp, "starts": at(up).isoformat()}
        assert st is not None
        st = alert_incident.record(
            spec, st, parsed(alerts_=[alert(fp=fp, starts=at(up).isoformat())]), at(up), flap=strict
        )
        assert st is not None
    # rounds 1 and 2 reopen (1 and 2 resolutions), round 3 flaps (3 resolutions within 30 minutes)
    assert [e.type for e in st.timeline].count("Reopened") == 2 and st.flaps == 1
    [said] = [e.message for e in st.timeline if e.type == "Flapping"]
    assert "after 3+ resolutions in 30m: flap #1" in said
