"""Noise control as tables: when an alert group is flapping, and the per-person page budget (nothing dropped)."""

import datetime as dt

import pytest

from oncall_operator.api import incident
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


def page(person: str, minute: float, text: str = "") -> noise.Page:
    return noise.Page(person, text or f"page at {minute}", m(minute))


@pytest.mark.parametrize(
    ("sent", "pending", "held", "now", "send", "summaries", "still_held"),
    [
        # under the cap: everything goes
        ([], [page("ada", 0), page("bob", 0)], [], 0, ["ada", "bob"], [], 0),
        # cap 2: Ada's third page in the hour is held, Bob's goes
        ([("ada", m(0)), ("ada", m(10))], [page("ada", 20), page("bob", 20)], [], 20, ["bob"], [], 1),
        # an hour after her first page Ada has room: one summary counting the 3 held, nothing else yet
        (
            [("ada", m(0)), ("ada", m(10))],
            [page("ada", 61)],
            [page("ada", 20), page("ada", 30), page("ada", 40)],
            61,
            [],
            [("ada", 3)],
            1,
        ),
        # room for two: the summary and the new page
        ([], [page("ada", 90)], [page("ada", 20)], 90, ["ada"], [("ada", 1)], 0),
        # new pages never overtake held ones
        ([("ada", m(50)), ("ada", m(55))], [page("ada", 60)], [page("ada", 56)], 60, [], [], 2),
    ],
)
def test_budget(
    sent: list[tuple[str, dt.datetime]],
    pending: list[noise.Page],
    held: list[noise.Page],
    now: float,
    send: list[str],
    summaries: list[tuple[str, int]],
    still_held: int,
) -> None:
    out = noise.budget(sent, pending, held, m(now), cap=2)
    assert [p.person for p in out.send] == send
    assert [(s.person, s.count) for s in out.summaries] == summaries
    assert len(out.held) == still_held
    # nothing is dropped: every page is sent, counted in a summary, or still held
    assert len(out.send) + sum(s.count for s in out.summaries) + len(out.held) == len(pending) + len(held)


def test_the_summary_says_how_many_and_which() -> None:
    held = [page("ada", n, f"[critical] db down #{n}") for n in range(7)]
    (summary,) = noise.budget([], [], held, m(70), cap=2).summaries
    assert summary.count == 7 and summary.text.startswith("7 pages held back since")
    assert "db down #0" in summary.text and "and 2 more" in summary.text
