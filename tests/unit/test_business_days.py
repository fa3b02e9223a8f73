"""``info`` is delivered when the next business day starts: the handbook's Mon-Fri 08:00-18:00 in
Europe/Berlin, across weekends and both DST changes of 2026 (Mar 29, Oct 25)."""

import datetime as dt
import pathlib

import pytest
import yaml

from oncall_operator.api import incident, policy
from oncall_operator.domain import business_days, escalation, lifecycle

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
POLICY = policy.EscalationPolicySpec.model_validate(
    yaml.safe_load((EXAMPLES / "escalation-policy.yaml").read_text())["spec"]
)
HOURS = POLICY.business_hours


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("started", "opening", "closing"),
    [
        ("2026-03-10T22:00", "2026-03-11T07:00", "2026-03-11T17:00"),  # Tue night (CET) -> Wed 08:00
        ("2026-03-10T09:00", "2026-03-11T07:00", "2026-03-11T17:00"),  # inside business hours -> the next day
        ("2026-03-09T06:00", "2026-03-09T07:00", "2026-03-09T17:00"),  # Mon 07:00 local -> the same morning
        ("2026-03-27T17:30", "2026-03-30T06:00", "2026-03-30T16:00"),  # Fri evening -> Mon, now CEST (+2)
        ("2026-10-24T12:00", "2026-10-26T07:00", "2026-10-26T17:00"),  # Sat -> Mon, back to CET (+1)
        ("2026-10-23T05:59", "2026-10-23T06:00", "2026-10-23T16:00"),  # Fri before opening, still CEST
    ],
)
def test_next_business_day_in_the_policy_zone(started: str, opening: str, closing: str) -> None:
    assert business_days.next_business_day(utc(started), HOURS) == (utc(opening), utc(closing))


def test_an_opening_the_clock_skips_is_when_it_jumps_past_it() -> None:
    hours = policy.BusinessHours.model_validate({"timeZone": "Europe/Berlin", "days": ["Sun"], "from": "02:30"})
    opening, _ = business_days.next_business_day(utc("2026-03-28T12:00"), hours)
    assert opening == utc("2026-03-29T01:00")  # 02:00 CET jumps to 03:00 CEST


def test_info_is_mailed_when_the_next_business_day_starts_and_says_when_it_is_due() -> None:
    start = utc("2026-03-27T17:30")  # Friday 18:30 in Berlin
    inc_spec = incident.IncidentSpec(title="Backup done", severity="info")
    inc = incident.Incident(spec=inc_spec, status=lifecycle.opened(inc_spec, start))

    def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
        return [escalation.Recipient(name="DevOps Lead")]

    friday = escalation.decide(POLICY, inc, start, resolve)
    assert friday.sends == () and friday.wake_at == utc("2026-03-30T06:00")
    inc = inc.model_copy(update={"status": friday.status})
    sunday = escalation.decide(POLICY, inc, utc("2026-03-29T20:00"), resolve)
    assert sunday.sends == ()
    monday = escalation.decide(POLICY, inc, utc("2026-03-30T06:00"), resolve)
    [send] = monday.sends
    assert (send.kind, send.channels) == ("notify", ("email",))
    assert send.text == "Respond by Mon 2026-03-30 18:00 CEST."
