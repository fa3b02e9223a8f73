"""Post-incident reviews: due two business days out, and a report built from the record."""

import datetime as dt

import pytest

from oncall_operator.api import incident, policy
from oncall_operator.domain import lifecycle, review

BERLIN = policy.BusinessHours.model_validate({"timeZone": "Europe/Berlin", "from": "08:00", "to": "18:00"})
UTC = dt.UTC


@pytest.mark.parametrize(
    ("resolved", "hours", "expected"),
    [
        # Tuesday evening in Berlin -> Thursday 18:00 Berlin (16:00 UTC in winter)
        (dt.datetime(2026, 3, 10, 19, 0, tzinfo=UTC), BERLIN, dt.datetime(2026, 3, 12, 17, 0, tzinfo=UTC)),
        # Friday -> Tuesday: the weekend does not count
        (dt.datetime(2026, 3, 13, 10, 0, tzinfo=UTC), BERLIN, dt.datetime(2026, 3, 17, 17, 0, tzinfo=UTC)),
        # Saturday -> Tuesday
        (dt.datetime(2026, 3, 14, 10, 0, tzinfo=UTC), BERLIN, dt.datetime(2026, 3, 17, 17, 0, tzinfo=UTC)),
        # across the spring DST change: Friday 27 March -> Tuesday 31 March 18:00 CEST = 16:00 UTC
        (dt.datetime(2026, 3, 27, 10, 0, tzinfo=UTC), BERLIN, dt.datetime(2026, 3, 31, 16, 0, tzinfo=UTC)),
        # Friday 23:30 UTC is already Saturday in Berlin -> Tuesday
        (dt.datetime(2026, 3, 13, 23, 30, tzinfo=UTC), BERLIN, dt.datetime(2026, 3, 17, 17, 0, tzinfo=UTC)),
        # no policy hours: Mon-Fri 09-17 UTC
        (dt.datetime(2026, 3, 10, 19, 0, tzinfo=UTC), None, dt.datetime(2026, 3, 12, 17, 0, tzinfo=UTC)),
    ],
)
def test_meeting_is_due_two_business_days_later(
    resolved: dt.datetime, hours: policy.BusinessHours | None, expected: dt.datetime
) -> None:
    assert review.due(resolved, hours) == expected


def resolved_incident(severity: str) -> incident.Incident:
    t0 = dt.datetime(2026, 3, 10, 22, 0, tzinfo=UTC)
    spec = incident.IncidentSpec(title="Checkout is down", severity=severity)
    status = lifecycle.opened(spec, t0)
    status.phase = incident.Phase.RESOLVED
    status.acknowledged_at, status.acknowledged_by = t0 + dt.timedelta(minutes=4), "ada"
    status.resolved_at, status.resolved_by = t0 + dt.timedelta(minutes=42), "ada"
    status.timeline.append(
        incident.TimelineEntry(
            at=t0 + dt.timedelta(minutes=42),
            type="Resolved",
            message="Resolved by ada: rolled back | release 42",
            actor="ada",
        )
    )
    inc = incident.Incident(spec=spec, status=status)
    inc.metadata.name, inc.metadata.namespace = "checkout-down", "shop"
    return inc


@pytest.mark.parametrize(("severity", "expected"), [("critical", True), ("warning", True), ("info", False)])
def test_p1_and_p2_get_a_review(severity: str, expected: bool) -> None:
    assert review.needs_review(resolved_incident(severity)) is expected


def test_report_carries_the_record_and_leaves_the_human_parts_to_fill() -> None:
    inc = resolved_incident("critical")
    text = review.render(inc, dt.datetime(2026, 3, 12, 17, 0, tzinfo=UTC), ["Check logs", "Roll back"])
    assert text.startswith("# Incident report: Checkout is down\n")
    assert "**Time to acknowledge:** 4 min; **time to resolve:** 42 min" in text
    assert "| 2026-03-10 22:42 UTC | Resolved | ada | Resolved by ada: rolled back \\| release 42 |" in text
    assert "- [ ] Check logs" in text and "## Root cause" in text and "## Action items" in text
    assert "**Review meeting due:** 2026-03-12 17:00 UTC" in text
