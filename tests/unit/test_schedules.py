"""Who is on call when: the handbook's rotation, DST both ways, a leap day, layers, stacked overrides, gaps.

Times in the tables are on the Berlin wall clock (``2026-03-30 09:00``) unless they end in ``Z``.
"""

import datetime as dt
import functools
import itertools
import pathlib
import zoneinfo
from typing import Any

import hypothesis
import pytest
import yaml
from hypothesis import strategies as st

from oncall_operator.api import schedule
from oncall_operator.domain import schedules

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = dt.UTC
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]


def handbook() -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / "schedule.yaml").read_text())["spec"])


HANDBOOK = schedule.OnCallScheduleSpec.model_validate(handbook())


def when(text: str) -> dt.datetime:
    """``2026-03-30 09:00`` on the Berlin wall clock, or an RFC 3339 instant ending in Z."""
    if text.endswith("Z"):
        return dt.datetime.fromisoformat(text)
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC)


def layer(
    participants: list[str],
    turn: str = "1w",
    handoff: str = "09:00",
    start: str = "2026-01-05",
    name: str = "rotation",
    restrictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "rotation": {"participants": participants, "turnLength": turn, "handoffTime": handoff, "start": start},
    }
    if restrictions:
        out["restrictions"] = restrictions
    return out


def business_hours(days: list[str] = WEEKDAYS, frm: str = "08:00", to: str = "18:00") -> list[dict[str, Any]]:
    return [{"days": days, "from": frm, "to": to}]


def make(
    *layers: dict[str, Any],
    zone: str = "Europe/Berlin",
    coverage: str = "Always",
    overrides: list[dict[str, Any]] | None = None,
) -> schedule.OnCallScheduleSpec:
    """A schedule with one role, ``team``, made of ``layers``."""
    return schedule.OnCallScheduleSpec.model_validate(
        {
            "timeZone": zone,
            "roles": [{"name": "team", "coverage": coverage, "layers": list(layers)}],
            "overrides": overrides or [],
        }
    )


def who(spec: schedule.OnCallScheduleSpec, at: str, role: str = "team") -> str | None:
    people = schedules.on_call(spec, when(at))[role]
    assert len(people) <= 1
    return people[0] if people else None


def starts(spec: schedule.OnCallScheduleSpec, frm: str, to: str, role: str = "team") -> list[dt.datetime]:
    return [s.start for s in schedules.shifts(spec, role, when(frm), when(to))]


# --- The handbook: primary weekly from Monday 5 January 2026 09:00, Europe/Berlin ---------------------------------

HANDBOOK_ROWS = [
    ("before the rotation starts nobody is primary", "2026-01-05 08:59", "primary", None),
    ("week 1 DevOps Lead", "2026-01-05 09:00", "primary", "DevOps Lead"),
    ("week 1 until the Monday handoff", "2026-01-12 08:59", "primary", "DevOps Lead"),
    ("week 2 Backend Lead", "2026-01-12 09:00", "primary", "Backend Lead"),
    ("week 3 SRE Engineer 1", "2026-01-19 09:00", "primary", "SRE Engineer 1"),
    ("week 4 SRE Engineer 2", "2026-01-26 09:00", "primary", "SRE Engineer 2"),
    ("week 5 starts over with DevOps Lead", "2026-02-02 09:00", "primary", "DevOps Lead"),
    ("Sunday 27 December, week 51: SRE Engineer 1", "2026-12-27 03:00", "primary", "SRE Engineer 1"),
    ("secondary is always the CTO, Saturday night too", "2026-02-07 03:00", "secondary", "CTO / Engineering Manager"),
    ("CRM support starts Monday 08:00", "2026-01-05 08:00", "crm-support", "CRM Team Lead"),
    ("no CRM support before 08:00", "2026-01-05 07:59", "crm-support", None),
    ("CRM support until Friday 18:00", "2026-01-09 17:59", "crm-support", "CRM Team Lead"),
    ("no CRM support on Friday evening", "2026-01-09 18:00", "crm-support", None),
    ("no finance support on Saturday", "2026-01-10 12:00", "finance-support", None),
    ("inventory support on a weekday", "2026-01-13 12:00", "inventory-support", "Inventory Team Lead"),
]


@pytest.mark.parametrize(("why", "at", "role", "expected"), HANDBOOK_ROWS, ids=[r[0] for r in HANDBOOK_ROWS])
def test_handbook_rotation(why: str, at: str, role: str, expected: str | None) -> None:
    assert who(HANDBOOK, at, role) == expected


def test_on_call_answers_every_role_in_spec_order() -> None:
    assert schedules.on_call(HANDBOOK, when("2026-01-07 10:00")) == {
        "primary": ["DevOps Lead"],
        "secondary": ["CTO / Engineering Manager"],
        "crm-support": ["CRM Team Lead"],
        "finance-support": ["Finance Team Lead"],
        "inventory-support": ["Inventory Team Lead"],
    }


# --- DST in Europe/Berlin, both ways --------------------------------------------------------------------------------

DST_ROWS = [
    ("last winter week: SRE Engineer 2 until Monday 09:00", "2026-03-30 08:59", "SRE Engineer 2"),
    ("first summer Monday: DevOps Lead at 09:00 CEST, not 10:00", "2026-03-30 09:00", "DevOps Lead"),
    ("the hour that would slip: 07:00Z is 09:00 CEST", "2026-03-30T07:00:00Z", "DevOps Lead"),
    ("last summer week: Backend Lead until Monday 09:00", "2026-10-26 08:59", "Backend Lead"),
    ("first winter Monday: SRE Engineer 1 at 09:00 CET, not 08:00", "2026-10-26 09:00", "SRE Engineer 1"),
    ("the hour that would slip: 07:30Z is still 08:30 CET", "2026-10-26T07:30:00Z", "Backend Lead"),
]


@pytest.mark.parametrize(("why", "at", "expected"), DST_ROWS, ids=[r[0] for r in DST_ROWS])
def test_weekly_handoff_stays_at_0900_across_dst(why: str, at: str, expected: str) -> None:
    assert who(HANDBOOK, at, "primary") == expected


def test_weekly_handoff_instants_move_with_the_offset() -> None:
    handoffs = starts(HANDBOOK, "2026-03-16 00:00", "2026-11-02 00:00", "primary")[1:]
    assert all(h.astimezone(BERLIN).strftime("%a %H:%M") == "Mon 09:00" for h in handoffs)
    assert when("2026-03-23T08:00:00Z") in handoffs  # 09:00 CET
    assert when("2026-03-30T07:00:00Z") in handoffs  # 09:00 CEST
    assert when("2026-10-19T07:00:00Z") in handoffs  # 09:00 CEST
    assert when("2026-10-26T08:00:00Z") in handoffs  # 09:00 CET


NIGHT_SHIFT = make(layer(["Ana", "Ben"], turn="1d", handoff="02:30", start="2026-03-01"))
"""A daily handoff at 02:30, a time that does not exist on 29 March and exists twice on 25 October."""

NIGHT_ROWS = [
    ("29 March: Ben's turn runs until the clock jumps", "2026-03-29T00:59:59Z", "Ben"),
    ("29 March: 02:30 does not exist, Ana takes over at 03:00 CEST", "2026-03-29T01:00:00Z", "Ana"),
    ("30 March: back to 02:30 CEST", "2026-03-30T00:30:00Z", "Ben"),
    ("25 October: Ben until the first 02:30", "2026-10-25T00:29:59Z", "Ben"),
    ("25 October: handoff at the first 02:30 (CEST)", "2026-10-25T00:30:00Z", "Ana"),
    ("25 October: no second handoff at 02:30 CET", "2026-10-25T01:30:00Z", "Ana"),
    ("26 October: 02:30 CET", "2026-10-26T01:30:00Z", "Ben"),
]


@pytest.mark.parametrize(("why", "at", "expected"), NIGHT_ROWS, ids=[r[0] for r in NIGHT_ROWS])
def test_handoff_in_a_dst_gap_or_fold(why: str, at: str, expected: str) -> None:
    assert who(NIGHT_SHIFT, at) == expected


LOCAL_ROWS = [
    ("an ordinary time", "Europe/Berlin", "2026-01-05", "09:00", "2026-01-05T08:00:00Z"),
    ("Berlin spring gap: 02:30 is 03:00 CEST", "Europe/Berlin", "2026-03-29", "02:30", "2026-03-29T01:00:00Z"),
    ("Berlin spring gap starts at 02:00", "Europe/Berlin", "2026-03-29", "02:00", "2026-03-29T01:00:00Z"),
    ("Berlin fold: the first 02:30, summer time", "Europe/Berlin", "2026-10-25", "02:30", "2026-10-25T00:30:00Z"),
    ("Berlin after the fold", "Europe/Berlin", "2026-10-25", "03:00", "2026-10-25T02:00:00Z"),
    ("New York spring gap", "America/New_York", "2026-03-08", "02:30", "2026-03-08T07:00:00Z"),
    ("New York fold: first 01:30, EDT", "America/New_York", "2026-11-01", "01:30", "2026-11-01T05:30:00Z"),
    ("Lord Howe's half-hour gap", "Australia/Lord_Howe", "2026-10-04", "02:15", "2026-10-03T15:30:00Z"),
    ("Santiago's gap at midnight", "America/Santiago", "2026-09-06", "00:30", "2026-09-06T04:00:00Z"),
    ("Samoa skipped 30 December 2011", "Pacific/Apia", "2011-12-30", "09:00", "2011-12-30T10:00:00Z"),
]


@pytest.mark.parametrize(("why", "zone", "day", "clock", "expected"), LOCAL_ROWS, ids=[r[0] for r in LOCAL_ROWS])
def test_local_time_rule(why: str, zone: str, day: str, clock: str, expected: str) -> None:
    """A wall-clock time means the first instant the clock shows it or later."""
    found = schedules.local_instant(zoneinfo.ZoneInfo(zone), dt.date.fromisoformat(day), dt.time.fromisoformat(clock))
    assert found == when(expected)


def test_sub_day_turns_count_elapsed_time_across_dst() -> None:
    spec = make(layer(["Ana", "Ben"], turn="12h", handoff="09:00", start="2026-03-28"))
    assert [s.isoformat() for s in starts(spec, "2026-03-28 09:00", "2026-03-30 00:00")] == [
        "2026-03-28T08:00:00+00:00",  # 09:00 CET
        "2026-03-28T20:00:00+00:00",  # 21:00 CET
        "2026-03-29T08:00:00+00:00",  # 10:00 CEST: twelve hours are twelve hours
        "2026-03-29T20:00:00+00:00",  # 22:00 CEST
    ]


BUSINESS_DST_ROWS = [
    ("Friday before spring forward: 08:00 CET", "2026-03-27 00:00", "2026-03-28 00:00", "2026-03-27T07:00:00Z"),
    ("Monday after spring forward: 08:00 CEST", "2026-03-30 00:00", "2026-03-31 00:00", "2026-03-30T06:00:00Z"),
    ("Friday before fall back: 08:00 CEST", "2026-10-23 00:00", "2026-10-24 00:00", "2026-10-23T06:00:00Z"),
    ("Monday after fall back: 08:00 CET", "2026-10-26 00:00", "2026-10-27 00:00", "2026-10-26T07:00:00Z"),
]


@pytest.mark.parametrize(("why", "frm", "to", "expected"), BUSINESS_DST_ROWS, ids=[r[0] for r in BUSINESS_DST_ROWS])
def test_business_hours_stay_0800_to_1800_across_dst(why: str, frm: str, to: str, expected: str) -> None:
    (shift,) = schedules.shifts(HANDBOOK, "crm-support", when(frm), when(to))
    assert shift.start == when(expected)
    assert shift.end - shift.start == dt.timedelta(hours=10)
    assert shift.people == ("CRM Team Lead",) and shift.source == "business-hours"


# --- A leap day -----------------------------------------------------------------------------------------------------

DAILY_2028 = make(layer(["Ana", "Ben", "Cleo"], turn="1d", start="2028-02-27"))
FOUR_DAYS_2028 = make(layer(["Ana", "Ben"], turn="4d", start="2028-02-26"))
WEEKLY_FROM_LEAP_DAY = make(layer(["Ana", "Ben"], turn="1w", start="2028-02-29"))
SUPPORT_2028 = make(layer(["Support Lead"], start="2028-02-28", restrictions=business_hours()))

LEAP_ROWS = [
    ("daily: Ben on 28 February", DAILY_2028, "2028-02-28 09:00", "Ben"),
    ("daily: 29 February is a day of its own, Cleo's", DAILY_2028, "2028-02-29 09:00", "Cleo"),
    ("daily: Cleo until 1 March 09:00", DAILY_2028, "2028-03-01 08:59", "Cleo"),
    ("daily: Ana on 1 March", DAILY_2028, "2028-03-01 09:00", "Ana"),
    ("4 days from 26 February: Ana until 1 March", FOUR_DAYS_2028, "2028-03-01 08:59", "Ana"),
    ("4 days from 26 February end on 1 March in a leap year", FOUR_DAYS_2028, "2028-03-01 09:00", "Ben"),
    ("a rotation starting on the leap day", WEEKLY_FROM_LEAP_DAY, "2028-02-29 09:00", "Ana"),
    ("a week after the leap day", WEEKLY_FROM_LEAP_DAY, "2028-03-07 09:00", "Ben"),
    ("29 February 2028 is a Tuesday: business hours", SUPPORT_2028, "2028-02-29 12:00", "Support Lead"),
    ("...and ends at 18:00", SUPPORT_2028, "2028-02-29 18:00", None),
]


@pytest.mark.parametrize(("why", "spec", "at", "expected"), LEAP_ROWS, ids=[r[0] for r in LEAP_ROWS])
def test_leap_day(why: str, spec: schedule.OnCallScheduleSpec, at: str, expected: str | None) -> None:
    assert who(spec, at) == expected


# --- Restrictions ---------------------------------------------------------------------------------------------------

NIGHTS = make(
    layer(["Night Lead"], restrictions=[{"days": ["Fri"], "from": "22:00", "to": "06:00"}]),
)
SPLIT_DAY = make(
    layer(
        ["Support Lead"],
        restrictions=[
            {"days": WEEKDAYS, "from": "08:00", "to": "12:00"},
            {"days": WEEKDAYS, "from": "13:00", "to": "18:00"},
            {"days": ["Sat"], "from": "10:00", "to": "14:00"},
        ],
    )
)

RESTRICTION_ROWS = [
    ("Friday 22:00-06:00 starts Friday night", NIGHTS, "2026-01-09 22:00", "Night Lead"),
    ("...and runs into Saturday morning", NIGHTS, "2026-01-10 05:59", "Night Lead"),
    ("...ending at 06:00", NIGHTS, "2026-01-10 06:00", None),
    ("a Thursday night is not a Friday night", NIGHTS, "2026-01-08 23:00", None),
    ("Monday morning window", SPLIT_DAY, "2026-01-05 11:59", "Support Lead"),
    ("lunch break between two windows", SPLIT_DAY, "2026-01-05 12:30", None),
    ("Monday afternoon window", SPLIT_DAY, "2026-01-05 13:00", "Support Lead"),
    ("a Saturday window of its own", SPLIT_DAY, "2026-01-10 10:00", "Support Lead"),
    ("Sunday: no window", SPLIT_DAY, "2026-01-11 12:00", None),
]


@pytest.mark.parametrize(("why", "spec", "at", "expected"), RESTRICTION_ROWS, ids=[r[0] for r in RESTRICTION_ROWS])
def test_restrictions(why: str, spec: schedule.OnCallScheduleSpec, at: str, expected: str | None) -> None:
    assert who(spec, at) == expected


# --- Layers: the one listed later wins where it has somebody -------------------------------------------------------

BASE = layer(["DevOps Lead", "Backend Lead"], name="base")
DAYTIME = layer(["SRE Engineer 1"], name="daytime", restrictions=business_hours())
LATE_START = layer(["SRE Engineer 2"], name="from-february", start="2026-02-02")

LAYER_ROWS = [
    ("weekday office hours: the daytime layer wins", make(BASE, DAYTIME), "2026-01-05 10:00", "SRE Engineer 1"),
    ("weekday evening: daytime has nobody, base shows", make(BASE, DAYTIME), "2026-01-05 20:00", "DevOps Lead"),
    ("Saturday: base", make(BASE, DAYTIME), "2026-01-10 12:00", "DevOps Lead"),
    ("second week evening: base's next turn", make(BASE, DAYTIME), "2026-01-12 20:00", "Backend Lead"),
    ("listed first, the daytime layer never shows", make(DAYTIME, BASE), "2026-01-05 10:00", "DevOps Lead"),
    ("before a later layer starts, the one below shows", make(BASE, LATE_START), "2026-01-13 10:00", "Backend Lead"),
    ("once it starts, the later layer wins", make(BASE, LATE_START), "2026-02-02 09:00", "SRE Engineer 2"),
]


@pytest.mark.parametrize(("why", "spec", "at", "expected"), LAYER_ROWS, ids=[r[0] for r in LAYER_ROWS])
def test_later_layer_wins_where_it_has_somebody(
    why: str, spec: schedule.OnCallScheduleSpec, at: str, expected: str | None
) -> None:
    assert who(spec, at) == expected


# --- Overrides: over layers, stacked, the one listed later wins ----------------------------------------------------


def override(role: str, user: str, start: str, end: str) -> dict[str, Any]:
    return {"role": role, "user": user, "start": start, "end": end}


COVERED = schedule.OnCallScheduleSpec.model_validate(
    {
        **handbook(),
        "overrides": [
            override("primary", "Backend Lead", "2026-01-06T12:00:00+01:00", "2026-01-06T18:00:00+01:00"),
            override("primary", "SRE Engineer 1", "2026-01-06T14:00:00+01:00", "2026-01-06T16:00:00+01:00"),
            override("primary", "SRE Engineer 2", "2026-01-06T15:00:00+01:00", "2026-01-06T17:00:00+01:00"),
            override("crm-support", "Backend Lead", "2026-01-10T10:00:00+01:00", "2026-01-10T14:00:00+01:00"),
            override("secondary", "DevOps Lead", "2026-01-08T09:00:00", "2026-01-08T10:00:00"),
        ],
    }
)

OVERRIDE_ROWS = [
    ("before any override: the weekly layer", "2026-01-06 11:59", "primary", "DevOps Lead"),
    ("Backend Lead covers DevOps Lead from 12:00", "2026-01-06 12:00", "primary", "Backend Lead"),
    ("stacked: SRE Engineer 1 over Backend Lead at 14:00", "2026-01-06 14:00", "primary", "SRE Engineer 1"),
    ("stacked: SRE Engineer 2, listed later, wins the overlap", "2026-01-06 15:30", "primary", "SRE Engineer 2"),
    ("SRE Engineer 2 stays after SRE Engineer 1's override ends", "2026-01-06 16:30", "primary", "SRE Engineer 2"),
    ("then Backend Lead's longer override shows again", "2026-01-06 17:00", "primary", "Backend Lead"),
    ("18:00: the weekly layer again", "2026-01-06 18:00", "primary", "DevOps Lead"),
    ("an override covers a business-hours role on Saturday", "2026-01-10 12:00", "crm-support", "Backend Lead"),
    ("an override without an offset is on the Berlin clock", "2026-01-08 09:00", "secondary", "DevOps Lead"),
    ("...and ends on it", "2026-01-08 10:00", "secondary", "CTO / Engineering Manager"),
]


@pytest.mark.parametrize(("why", "at", "role", "expected"), OVERRIDE_ROWS, ids=[r[0] for r in OVERRIDE_ROWS])
def test_overrides_stack_over_layers(why: str, at: str, role: str, expected: str) -> None:
    assert who(COVERED, at, role) == expected


def test_shifts_name_their_source() -> None:
    found = schedules.shifts(COVERED, "primary", when("2026-01-06 11:00"), when("2026-01-06 19:00"))
    assert [(s.start.astimezone(BERLIN).strftime("%H:%M"), s.people, s.source) for s in found] == [
        ("11:00", ("DevOps Lead",), "weekly"),
        ("12:00", ("Backend Lead",), "override"),
        ("14:00", ("SRE Engineer 1",), "override"),
        ("15:00", ("SRE Engineer 2",), "override"),
        ("17:00", ("Backend Lead",), "override"),
        ("18:00", ("DevOps Lead",), "weekly"),
    ]
    assert found[0].start == when("2026-01-06 11:00") and found[-1].end == when("2026-01-06 19:00")
    assert all(a.end == b.start for a, b in itertools.pairwise(found))


def test_shifts_leave_out_time_with_nobody() -> None:
    found = schedules.shifts(HANDBOOK, "crm-support", when("2026-01-09 00:00"), when("2026-01-13 00:00"))
    assert [(s.start, s.end) for s in found] == [
        (when("2026-01-09 08:00"), when("2026-01-09 18:00")),
        (when("2026-01-12 08:00"), when("2026-01-12 18:00")),
    ]


# --- Coverage: holes versus intended off-hours ----------------------------------------------------------------------


def gap_rows(spec: schedule.OnCallScheduleSpec, now: str, horizon: dt.timedelta = schedules.HORIZON) -> list[Any]:
    return [(g.role, g.start, g.end) for g in schedules.gaps(spec, when(now), horizon)]


def test_running_handbook_has_no_gaps() -> None:
    assert gap_rows(HANDBOOK, "2026-02-02 00:00") == []
    verdict = schedules.coverage_verdict(schedules.gaps(HANDBOOK, when("2026-02-02 00:00")))
    assert (verdict.ok, verdict.reason) == (True, "Covered")
    assert verdict.message == "every role has somebody on call for the next 14 days"


def test_handbook_before_it_starts_has_holes_but_nights_are_not_gaps() -> None:
    """On New Year's Day nobody is on call yet: a hole for 24/7 roles, only office hours for the support roles."""
    assert gap_rows(HANDBOOK, "2026-01-01 00:00") == [
        ("primary", when("2026-01-01 00:00"), when("2026-01-05 09:00")),
        ("secondary", when("2026-01-01 00:00"), when("2026-01-05 09:00")),
        ("crm-support", when("2026-01-01 08:00"), when("2026-01-01 18:00")),
        ("finance-support", when("2026-01-01 08:00"), when("2026-01-01 18:00")),
        ("inventory-support", when("2026-01-01 08:00"), when("2026-01-01 18:00")),
        ("crm-support", when("2026-01-02 08:00"), when("2026-01-02 18:00")),
        ("finance-support", when("2026-01-02 08:00"), when("2026-01-02 18:00")),
        ("inventory-support", when("2026-01-02 08:00"), when("2026-01-02 18:00")),
    ]
    verdict = schedules.coverage_verdict(schedules.gaps(HANDBOOK, when("2026-01-01 00:00")))
    assert (verdict.ok, verdict.reason) == (False, "CoverageGap")
    assert verdict.message == (
        "primary has nobody on call from 2025-12-31T23:00:00Z to 2026-01-05T08:00:00Z; 8 gaps in the next 14 days "
        "(roles: primary, secondary, crm-support, finance-support, inventory-support)"
    )


GAP_ROWS = [
    (
        "Always: every night of a business-hours layer is a hole",
        make(layer(["CRM Team Lead"], restrictions=business_hours()), coverage="Always"),
        "2026-01-05 12:00",
        dt.timedelta(days=2),
        [("2026-01-05 18:00", "2026-01-06 08:00"), ("2026-01-06 18:00", "2026-01-07 08:00")],
    ),
    (
        "Restricted: nights are off-hours, not gaps",
        make(layer(["CRM Team Lead"], restrictions=business_hours()), coverage="Restricted"),
        "2026-01-05 12:00",
        dt.timedelta(days=2),
        [],
    ),
    (
        "Restricted: office hours before the rotation starts are gaps",
        make(layer(["CRM Team Lead"], start="2026-01-07", restrictions=business_hours()), coverage="Restricted"),
        "2026-01-05 00:00",
        dt.timedelta(days=7),
        [
            ("2026-01-05 08:00", "2026-01-05 18:00"),
            ("2026-01-06 08:00", "2026-01-06 18:00"),
            ("2026-01-07 08:00", "2026-01-07 09:00"),  # the first turn starts at the 09:00 handoff
        ],
    ),
    (
        "Restricted with an unrestricted layer: every moment is meant",
        make(layer(["A"], start="2026-01-07"), layer(["B"], restrictions=business_hours()), coverage="Restricted"),
        "2026-01-05 12:00",
        dt.timedelta(days=1),
        [("2026-01-05 18:00", "2026-01-06 08:00")],
    ),
    (
        "an override fills the start of a hole",
        make(
            layer(["DevOps Lead"], start="2026-01-07"),
            overrides=[override("team", "CTO", "2026-01-05T00:00:00+01:00", "2026-01-06T00:00:00+01:00")],
        ),
        "2026-01-05 00:00",
        dt.timedelta(days=7),
        [("2026-01-06 00:00", "2026-01-07 09:00")],
    ),
    (
        "a gap is cut at the horizon",
        make(layer(["DevOps Lead"], start="2026-03-01")),
        "2026-01-05 00:00",
        dt.timedelta(days=14),
        [("2026-01-05 00:00", "2026-01-19 00:00")],
    ),
    (
        "a layer with a turn under a minute is ignored (the check reports it)",
        make(layer(["DevOps Lead"], turn="0")),
        "2026-01-05 00:00",
        dt.timedelta(days=1),
        [("2026-01-05 00:00", "2026-01-06 00:00")],
    ),
]


@pytest.mark.parametrize(("why", "spec", "now", "horizon", "expected"), GAP_ROWS, ids=[r[0] for r in GAP_ROWS])
def test_gaps(
    why: str, spec: schedule.OnCallScheduleSpec, now: str, horizon: dt.timedelta, expected: list[tuple[str, str]]
) -> None:
    assert gap_rows(spec, now, horizon) == [("team", when(a), when(b)) for a, b in expected]


def test_verdict_counts_gaps_and_names_their_roles() -> None:
    found = [
        schedule.Gap(role="crm-support", start=when("2026-01-02 08:00"), end=when("2026-01-02 18:00")),
        schedule.Gap(role="primary", start=when("2026-01-01 08:00"), end=when("2026-01-01 09:00")),
    ]
    verdict = schedules.coverage_verdict(found)
    assert verdict.message.startswith("primary has nobody on call from 2026-01-01T07:00:00Z to 2026-01-01T08:00:00Z")
    assert verdict.message.endswith("2 gaps in the next 14 days (roles: crm-support, primary)")


# --- Status: what kubectl get shows ---------------------------------------------------------------------------------


def test_status_on_a_friday_before_spring_forward() -> None:
    found = schedules.status(HANDBOOK, when("2026-03-27 12:00"))
    assert found.on_call == (
        "primary=SRE Engineer 2, secondary=CTO / Engineering Manager, crm-support=CRM Team Lead, "
        "finance-support=Finance Team Lead, inventory-support=Inventory Team Lead"
    )
    assert found.next_handoff == when("2026-03-27 18:00")
    assert found.next_on_call == "crm-support=-, finance-support=-, inventory-support=-"  # business hours end
    assert [(r.role, r.on_call, r.until, r.next) for r in found.roles] == [
        ("primary", ["SRE Engineer 2"], when("2026-03-30 09:00"), ["DevOps Lead"]),
        ("secondary", ["CTO / Engineering Manager"], None, []),
        ("crm-support", ["CRM Team Lead"], when("2026-03-27 18:00"), []),
        ("finance-support", ["Finance Team Lead"], when("2026-03-27 18:00"), []),
        ("inventory-support", ["Inventory Team Lead"], when("2026-03-27 18:00"), []),
    ]
    assert found.gaps == [] and found.conditions == []
    assert schedule.OnCallScheduleStatus.model_validate(found.wire()) == found


def test_status_on_a_saturday_shows_nobody_as_a_dash() -> None:
    found = schedules.status(HANDBOOK, when("2026-03-28 12:00"))
    assert found.on_call == (
        "primary=SRE Engineer 2, secondary=CTO / Engineering Manager, crm-support=-, finance-support=-, "
        "inventory-support=-"
    )
    assert found.roles[2].until == when("2026-03-30 08:00") and found.roles[2].next == ["CRM Team Lead"]
    assert found.next_handoff == when("2026-03-30 08:00")
    assert found.next_on_call == (
        "crm-support=CRM Team Lead, finance-support=Finance Team Lead, inventory-support=Inventory Team Lead"
    )
    assert schedules.next_handoff(HANDBOOK, when("2026-03-28 12:00")) == when("2026-03-30 08:00")


def test_next_handoff_looks_past_the_horizon_for_long_turns() -> None:
    spec = make(layer(["Ana", "Ben"], turn="4w"))
    assert schedules.next_handoff(spec, when("2026-01-06 00:00")) == when("2026-02-02 09:00")
    assert schedules.next_handoff(make(layer(["Ana"])), when("2026-01-06 00:00")) is None


def test_status_keeps_at_most_a_hundred_gaps() -> None:
    """200 days of office hours before a rotation starts: over a hundred holes, the first hundred in status."""
    spec = make(layer(["Ana"], start="2027-01-01", restrictions=business_hours()), coverage="Restricted")
    now, horizon = when("2026-01-05 00:00"), dt.timedelta(days=200)
    assert len(schedules.status(spec, now, horizon).gaps) == schedules.MAX_GAPS
    assert len(schedules.gaps(spec, now, horizon)) > schedules.MAX_GAPS


def test_instants_must_be_aware_and_roles_known() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedules.on_call(HANDBOOK, dt.datetime(2026, 1, 5, 9))
    with pytest.raises(LookupError, match="no role 'tertiary'"):
        schedules.shifts(HANDBOOK, "tertiary", when("2026-01-05 00:00"), when("2026-01-06 00:00"))


# --- Properties -----------------------------------------------------------------------------------------------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Europe/Dublin",
    "Africa/Casablanca",
    "UTC",
]


def wall_reached(zone: zoneinfo.ZoneInfo, day: dt.date, clock: dt.time) -> dt.datetime:
    """Oracle: scan minute by minute for the first instant the wall clock shows ``day clock`` or later."""
    target = dt.datetime.combine(day, clock)
    offsets = [target.replace(tzinfo=zone, fold=f).utcoffset() or dt.timedelta() for f in (0, 1)]
    instant = (target - max(offsets) - dt.timedelta(hours=3)).replace(tzinfo=UTC)
    while instant.astimezone(zone).replace(tzinfo=None) < target:
        instant += dt.timedelta(minutes=1)
    return instant


@functools.cache
def clock_changes(zone: str) -> list[dt.datetime]:
    """The wall-clock time just before each offset change of ``zone`` in 2020-2030 (e.g. 02:00 on a spring day)."""
    tz = zoneinfo.ZoneInfo(zone)
    noon = dt.datetime(2020, 1, 1, 12, tzinfo=UTC)
    out = []
    while noon.year < 2031:
        lo, hi = noon, noon + dt.timedelta(days=1)
        if lo.astimezone(tz).utcoffset() != hi.astimezone(tz).utcoffset():
            while hi - lo > dt.timedelta(seconds=1):
                mid = lo + dt.timedelta(seconds=(hi - lo).total_seconds() // 2)
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append((hi - dt.timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) + dt.timedelta(seconds=1))
        noon += dt.timedelta(days=1)
    return out


NUDGES = [dt.timedelta(seconds=s) for s in (-3600, -1, 0, 1, 1800, 3600)]
CLOSE = [dt.timedelta(minutes=m) for m in (-60, -30, -1, 0, 1, 15, 30, 45, 59, 60, 90)]


@st.composite
def rotations(draw: st.DrawFn) -> tuple[schedule.OnCallScheduleSpec, dt.datetime]:
    """A rotation and an instant: anywhere, at a handoff, or at a handoff close to a clock change (gap or fold)."""
    zone = draw(st.sampled_from(ZONES))
    people = [f"P{n}" for n in range(draw(st.integers(2, 5)))]
    days = draw(st.one_of(st.sampled_from([1, 7]), st.integers(1, 14)))
    turn = draw(st.integers(0, 60))
    where = draw(st.sampled_from(["anywhere", "at a handoff", "at a handoff near a clock change"]))
    if where.endswith("clock change") and clock_changes(zone):
        handoff = draw(st.sampled_from(clock_changes(zone))) + draw(st.sampled_from(CLOSE))
        clock = handoff.time().replace(second=0)
        start = handoff.date() - dt.timedelta(days=turn * days)
    else:
        clock = dt.time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45, 59])))
        start = draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)))
    spec = make(layer(people, turn=f"{days}d", handoff=clock.strftime("%H:%M"), start=start.isoformat()), zone=zone)
    if where == "anywhere":
        at = dt.datetime.combine(start, dt.time(), tzinfo=UTC)
        return spec, at + dt.timedelta(seconds=draw(st.integers(-3 * 86400, 400 * 86400)))
    handoff_at = wall_reached(zoneinfo.ZoneInfo(zone), start + dt.timedelta(days=turn * days), clock)
    return spec, handoff_at + draw(st.sampled_from(NUDGES))


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(rotations())
def test_any_instant_resolves_to_the_expected_participant(
    case: tuple[schedule.OnCallScheduleSpec, dt.datetime],
) -> None:
    spec, at = case
    rotation = spec.roles[0].layers[0].rotation
    zone = zoneinfo.ZoneInfo(spec.time_zone)
    days = int(rotation.turn_length.removesuffix("d"))
    clock = dt.time.fromisoformat(rotation.handoff_time)
    local = at.astimezone(zone).date()
    guess = (local - rotation.start).days // days
    turns = [k for k in range(guess + 1, guess - 3, -1) if k >= 0]
    turn = next(
        (k for k in turns if wall_reached(zone, rotation.start + dt.timedelta(days=k * days), clock) <= at),
        None,
    )
    expected = [] if turn is None else [rotation.participants[turn % len(rotation.participants)]]
    assert schedules.on_call(spec, at)["team"] == expected


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(rotations())
def test_every_handoff_falls_at_the_configured_wall_clock_time(
    case: tuple[schedule.OnCallScheduleSpec, dt.datetime],
) -> None:
    spec, at = case
    rotation = spec.roles[0].layers[0].rotation
    zone = zoneinfo.ZoneInfo(spec.time_zone)
    days = int(rotation.turn_length.removesuffix("d"))
    clock = dt.time.fromisoformat(rotation.handoff_time)
    window = dt.timedelta(days=3 * days)
    found = schedules.shifts(spec, "team", at - window, at + window)
    for handoff in [s.start for s in found if s.start != at - window]:
        local = handoff.astimezone(zone)
        day = next(
            d
            for d in (local.date(), local.date() - dt.timedelta(days=1))
            if (d - rotation.start).days % days == 0 and d >= rotation.start
        )
        assert handoff == wall_reached(zone, day, clock)
        exists = dt.datetime.combine(day, clock).replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
        if exists.replace(tzinfo=None) == dt.datetime.combine(day, clock):
            assert (local.date(), local.time(), local.fold) == (day, clock, 0)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(
    zone=st.sampled_from(ZONES),
    hours=st.integers(1, 23),
    offset=st.integers(0, 60 * 86400),
)
def test_sub_day_handoffs_are_a_turn_apart_in_elapsed_time(zone: str, hours: int, offset: int) -> None:
    spec = make(layer(["A", "B"], turn=f"{hours}h", handoff="09:00", start="2026-01-05"), zone=zone)
    first = schedules.local_instant(zoneinfo.ZoneInfo(zone), dt.date(2026, 1, 5), dt.time(9))
    at = first + dt.timedelta(seconds=offset)
    found = schedules.shifts(spec, "team", at, at + dt.timedelta(days=3))
    assert all((s.start - first) % dt.timedelta(hours=hours) == dt.timedelta() for s in found[1:])
    assert all(s.end - s.start == dt.timedelta(hours=hours) for s in found[1:-1])


PEOPLE = ["DevOps Lead", "Backend Lead", "SRE Engineer 1", "SRE Engineer 2"]


@st.composite
def overridden(draw: st.DrawFn) -> tuple[schedule.OnCallScheduleSpec, list[tuple[dt.datetime, dt.datetime, str]]]:
    base = dt.datetime(2026, 3, 27, tzinfo=UTC)
    stack = []
    for _ in range(draw(st.integers(0, 6))):
        start = base + dt.timedelta(minutes=draw(st.integers(0, 6 * 24 * 60)))
        end = start + dt.timedelta(minutes=draw(st.integers(1, 3 * 24 * 60)))
        stack.append((start, end, draw(st.sampled_from(PEOPLE))))
    spec = schedule.OnCallScheduleSpec.model_validate(
        {
            **handbook(),
            "overrides": [override("primary", u, s.isoformat(), e.isoformat()) for s, e, u in stack],
        }
    )
    return spec, stack


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(overridden(), st.integers(0, 8 * 24 * 60))
def test_the_last_listed_override_covering_an_instant_wins(
    case: tuple[schedule.OnCallScheduleSpec, list[tuple[dt.datetime, dt.datetime, str]]], minute: int
) -> None:
    spec, stack = case
    at = dt.datetime(2026, 3, 27, tzinfo=UTC) + dt.timedelta(minutes=minute)
    covering = [user for start, end, user in stack if start <= at < end]
    expected = covering[-1] if covering else schedules.on_call(HANDBOOK, at)["primary"][0]
    assert schedules.on_call(spec, at)["primary"] == [expected]
    # shifts agree with on_call, tile the window, and are maximal
    window = (at - dt.timedelta(days=1), at + dt.timedelta(days=1))
    found = schedules.shifts(spec, "primary", *window)
    assert found[0].start == window[0] and found[-1].end == window[1]
    for a, b in itertools.pairwise(found):
        assert a.end == b.start and (a.people, a.source) != (b.people, b.source)
    for s in found:
        assert schedules.on_call(spec, s.start)["primary"] == list(s.people)
