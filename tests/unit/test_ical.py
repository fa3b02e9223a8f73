"""The iCalendar export, read back by a real calendar library, agrees with the resolver.

``icalendar`` and ``recurring_ical_events`` stand in for the calendar apps: whatever they read
from the feed must be who the resolver says is on call, hour by hour through 2026 (both Berlin
DST changes) and at every shift edge.
"""

import bisect
import datetime as dt
import itertools
import pathlib
from typing import Any

import icalendar
import pytest
import recurring_ical_events  # type: ignore[import-untyped]
import yaml

from oncall_operator.api import schedule
from oncall_operator.domain import ical, schedules

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
UTC = dt.UTC
YEAR = (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))
Q1 = (dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 4, 1, tzinfo=UTC))
STAMP = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def handbook() -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / "schedule.yaml").read_text())["spec"])


HANDBOOK = schedule.OnCallScheduleSpec.model_validate(handbook())


def rotation(participants: list[str], turn: str, handoff: str, start: str) -> dict[str, Any]:
    return {"participants": participants, "turnLength": turn, "handoffTime": handoff, "start": start}


def override(role: str, user: str, start: str, end: str) -> dict[str, Any]:
    return {"role": role, "user": user, "start": start, "end": end}


BUSY = schedule.OnCallScheduleSpec.model_validate(
    {
        **handbook(),
        "roles": [
            *handbook()["roles"],
            {
                "name": "night-ops",
                "description": "a 02:30 handoff: missing on 29 March, twice on 25 October",
                "layers": [{"name": "nightly", "rotation": rotation(["Ana", "Ben"], "1d", "02:30", "2026-01-01")}],
            },
            {
                "name": "follow-the-sun",
                "layers": [
                    {"name": "halves", "rotation": rotation(["Ana", "Ben", "Cleo"], "12h", "07:00", "2026-01-02")},
                    {
                        "name": "lunch",
                        "rotation": rotation(["Dan"], "1w", "12:00", "2026-01-05"),
                        "restrictions": [{"days": ["Mon", "Wed", "Fri"], "from": "12:00", "to": "13:30"}],
                    },
                ],
            },
        ],
        "overrides": [
            override("primary", "Backend Lead", "2026-03-28T20:00:00+01:00", "2026-03-30T12:00:00+02:00"),
            override("primary", "SRE Engineer 1", "2026-03-29T01:00:00+01:00", "2026-03-29T04:00:00+02:00"),
            override("crm-support", "Finance Team Lead", "2026-06-13T09:00:00+02:00", "2026-06-13T13:00:00+02:00"),
            override("secondary", "DevOps Lead", "2026-10-24T22:00:00+02:00", "2026-10-25T05:00:00+01:00"),
        ],
    }
)


def unfolded(feed: str) -> list[str]:
    return feed.replace("\r\n ", "").split("\r\n")[:-1]


def calendar_people(feed: str, start: dt.datetime, end: dt.datetime) -> dict[str, list[tuple[Any, ...]]]:
    """Role -> sorted (start, end, people) as the calendar library reads the feed."""
    cal = icalendar.Calendar.from_ical(feed)
    out: dict[str, list[tuple[Any, ...]]] = {}
    for event in recurring_ical_events.of(cal).between(start, end):
        role, people = str(event["SUMMARY"]).split(": ", 1)
        begin, finish = event["DTSTART"].dt.astimezone(UTC), event["DTEND"].dt.astimezone(UTC)
        out.setdefault(role, []).append((begin, finish, people.split(" + ")))
    for events in out.values():
        events.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(events)), "a role's events overlap"
    return out


def lookup(events: list[tuple[Any, ...]], at: dt.datetime) -> list[str]:
    n = bisect.bisect_right([e[0] for e in events], at) - 1
    return list(events[n][2]) if n >= 0 and at < events[n][1] else []


@pytest.mark.parametrize("spec", [HANDBOOK, BUSY], ids=["handbook", "handbook with overrides and night shifts"])
def test_a_calendar_library_agrees_with_the_resolver_through_2026(spec: schedule.OnCallScheduleSpec) -> None:
    feed = ical.render("valeo-oncall", spec, *YEAR, STAMP)
    read = calendar_people(feed, *YEAR)
    starts = {role: [e[0] for e in events] for role, events in read.items()}
    hours = [YEAR[0] + dt.timedelta(hours=n) for n in range(int((YEAR[1] - YEAR[0]) / dt.timedelta(hours=1)))]
    edges = {t for events in read.values() for e in events for t in (e[0], e[1], e[1] - dt.timedelta(seconds=1))}
    checked = 0
    for at in sorted(set(hours) | {t for t in edges if YEAR[0] <= t < YEAR[1]}):
        for role, people in schedules.on_call(spec, at).items():
            events = read.get(role, [])
            n = bisect.bisect_right(starts.get(role, []), at) - 1
            seen = list(events[n][2]) if n >= 0 and at < events[n][1] else []
            assert seen == people, f"{role} at {at.isoformat()}: calendar {seen}, resolver {people}"
            checked += 1
    assert checked > 8760 * len(spec.roles)


def test_the_handbook_feed_through_both_dst_changes() -> None:
    read = calendar_people(ical.render("valeo-oncall", HANDBOOK, *YEAR, STAMP), *YEAR)
    primary = read["primary"]
    assert len(primary) == 52  # 51 weeks from Monday 5 January, then the week of 28 December cut at the year end
    for begin, _end, _people in primary[1:]:
        local = begin.astimezone(schedules.zone_of(HANDBOOK))
        assert local.strftime("%a %H:%M") == "Mon 09:00"
    assert lookup(primary, dt.datetime(2026, 3, 30, 7, tzinfo=UTC)) == ["DevOps Lead"]  # 09:00 CEST
    assert lookup(primary, dt.datetime(2026, 10, 26, 7, 30, tzinfo=UTC)) == ["Backend Lead"]  # 08:30 CET
    assert lookup(read["crm-support"], dt.datetime(2026, 3, 30, 6, tzinfo=UTC)) == ["CRM Team Lead"]  # 08:00 CEST
    assert lookup(read["crm-support"], dt.datetime(2026, 3, 28, 12, tzinfo=UTC)) == []  # Saturday


# --- The shape calendar apps insist on ------------------------------------------------------------------------------


def test_feed_is_rfc5545_shaped() -> None:
    feed = ical.render("valeo-oncall", HANDBOOK, dt.datetime(2026, 3, 1, tzinfo=UTC), *YEAR[1:], STAMP)
    assert feed.endswith("\r\n") and "\n" not in feed.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in feed.split("\r\n"))
    lines = unfolded(feed)
    assert lines[:5] == [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{ical.PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ]
    assert "X-WR-CALNAME:valeo-oncall" in lines and "X-WR-TIMEZONE:Europe/Berlin" in lines
    assert lines[-1] == "END:VCALENDAR"
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT") > 0
    for name in ("DTSTART", "DTEND", "DTSTAMP"):
        values = [line.split(":", 1)[1] for line in lines if line.startswith(f"{name}:")]
        assert len(values) == lines.count("BEGIN:VEVENT")
        assert all(len(v) == 16 and v.endswith("Z") for v in values)
    assert {line for line in lines if line.startswith("DTSTAMP:")} == {"DTSTAMP:20260101T120000Z"}
    uids = [line for line in lines if line.startswith("UID:")]
    assert len(uids) == len(set(uids)) == lines.count("BEGIN:VEVENT")


def test_names_with_commas_semicolons_backslashes_and_newlines_survive() -> None:
    name = "Müller, Jörg; Ops\\Lead 🚨"
    spec = schedule.OnCallScheduleSpec.model_validate(
        {
            "timeZone": "Europe/Berlin",
            "description": "Bereitschaft, Eskalation; alles",
            "roles": [
                {
                    "name": "primary",
                    "description": "Primary On-Call (24/7)\nweekly handoff Monday 09:00, " + "ä" * 80,
                    "layers": [{"name": "weekly", "rotation": rotation([name], "1w", "09:00", "2026-01-05")}],
                }
            ],
        }
    )
    feed = ical.render("Bereitschaft, Team; A", spec, *YEAR, STAMP)
    assert all(len(line.encode()) <= 75 for line in feed.split("\r\n"))
    cal = icalendar.Calendar.from_ical(feed)
    assert "X-WR-CALNAME:Bereitschaft\\, Team\\; A" in unfolded(feed)  # X- properties are TEXT (RFC 5545 3.8.8.2)
    (event,) = recurring_ical_events.of(cal).between(*YEAR)
    assert str(event["SUMMARY"]) == f"primary: {name}"
    assert str(event["DESCRIPTION"]).startswith("Primary On-Call (24/7)\nweekly handoff Monday 09:00, ääää")
    assert str(event["DESCRIPTION"]).endswith(f"On call for primary: {name} (layer weekly)")


ESCAPE_ROWS = [
    ("plain text", "DevOps Lead", "DevOps Lead"),
    ("comma", "Müller, Jörg", "Müller\\, Jörg"),
    ("semicolon", "a;b", "a\\;b"),
    ("backslash first, so escapes are not doubled", "a\\,b", "a\\\\\\,b"),
    ("newlines of every kind", "a\nb\r\nc\rd", "a\\nb\\nc\\nd"),
    ("other control characters dropped, tab kept", "a\x00b\tc\x7f", "ab\tc"),
]


@pytest.mark.parametrize(("why", "text", "expected"), ESCAPE_ROWS, ids=[r[0] for r in ESCAPE_ROWS])
def test_escape(why: str, text: str, expected: str) -> None:
    assert ical.escape(text) == expected


FOLD_ROWS = [
    ("75 octets stay one line", "X" * 75, ["X" * 75]),
    ("76 octets fold once", "X" * 76, ["X" * 75, " X"]),
    ("continuation lines hold 74 octets after the space", "X" * 150, ["X" * 75, " " + "X" * 74, " X"]),
    ("a two-octet character is never split", "X" * 74 + "ä", ["X" * 74, " ä"]),
    ("nor a four-octet one", "X" * 73 + "🚨", ["X" * 73, " 🚨"]),
]


@pytest.mark.parametrize(("why", "line", "expected"), FOLD_ROWS, ids=[r[0] for r in FOLD_ROWS])
def test_fold(why: str, line: str, expected: list[str]) -> None:
    folded = ical.fold(line)
    assert folded.split("\r\n") == expected
    assert folded.replace("\r\n ", "") == line


# --- Re-exports update events instead of duplicating them -----------------------------------------------------------


def events_by_uid(feed: str) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    cal = icalendar.Calendar.from_ical(feed)
    return {str(e["UID"]): (e.decoded("DTSTART"), e.decoded("DTEND")) for e in cal.walk("VEVENT")}


def test_uids_are_stable_across_export_windows() -> None:
    january = events_by_uid(ical.render("valeo-oncall", HANDBOOK, *Q1, STAMP))
    later = events_by_uid(
        ical.render(
            "valeo-oncall",
            HANDBOOK,
            dt.datetime(2026, 2, 1, tzinfo=UTC),  # a Sunday: inside SRE Engineer 2's week
            dt.datetime(2026, 3, 1, tzinfo=UTC),
            STAMP + dt.timedelta(days=31),
        )
    )
    assert later.keys() <= january.keys()
    assert all(later[uid][0] == january[uid][0] for uid in later)
    week4 = ical.uid("valeo-oncall", "primary", dt.datetime(2026, 1, 26, 8, tzinfo=UTC))
    assert later[week4][0] == dt.datetime(2026, 1, 26, 8, tzinfo=UTC)  # shown from its real start


def test_an_override_splits_a_shift_and_the_rest_keeps_its_uid() -> None:
    before = events_by_uid(ical.render("valeo-oncall", HANDBOOK, *Q1, STAMP))
    covered = HANDBOOK.model_copy(
        update={
            "overrides": [
                schedule.Override(
                    role="primary",
                    user="Backend Lead",
                    start=dt.datetime(2026, 1, 7, 12, tzinfo=UTC),
                    end=dt.datetime(2026, 1, 7, 18, tzinfo=UTC),
                )
            ]
        }
    )
    after = events_by_uid(ical.render("valeo-oncall", covered, *Q1, STAMP))
    week1 = ical.uid("valeo-oncall", "primary", dt.datetime(2026, 1, 5, 8, tzinfo=UTC))
    assert before[week1][1] == dt.datetime(2026, 1, 12, 8, tzinfo=UTC)
    assert after[week1][1] == dt.datetime(2026, 1, 7, 12, tzinfo=UTC)  # the same event, now shorter
    assert set(after) - set(before) == {
        ical.uid("valeo-oncall", "primary", dt.datetime(2026, 1, 7, 12, tzinfo=UTC)),
        ical.uid("valeo-oncall", "primary", dt.datetime(2026, 1, 7, 18, tzinfo=UTC)),
    }


def test_namespace_keeps_same_named_schedules_apart() -> None:
    at = dt.datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert ical.uid("valeo-oncall", "primary", at) == "primary-20260105T080000Z.valeo-oncall@oncall.dev"
    assert ical.uid("valeo-oncall", "primary", at, "team-a") != ical.uid("valeo-oncall", "primary", at, "team-b")
