"""An OnCallSchedule as an iCalendar feed (RFC 5545), so people see their shifts in their own calendar.

Written by hand rather than with a calendar library: the feed needs a handful of properties, and
the rules that make calendar apps accept it are few and checkable here: CRLF line ends, lines
folded at 75 octets without splitting a UTF-8 character, TEXT values escaped (``\\ ; ,`` and
newlines), times in UTC (``...Z``) so no VTIMEZONE is needed and no app can misplace a shift at a
DST change. The tests read the feed back with ``icalendar`` and ``recurring_ical_events`` and
compare it with the resolver hour by hour.

One VEVENT per shift (a maximal stretch with the same person from the same layer or override) per
role. Its UID is derived from the schedule, the role and the shift's start, so a calendar that
imports the feed again updates the event instead of adding a duplicate. To keep that start
independent of the export window, a shift that began before ``start`` is shown from its real start
(looked up to :data:`LOOKBACK` back); shifts running past ``end`` are cut at ``end``.
"""

import datetime as dt
from collections.abc import Iterator

from oncall_operator.api import schedule
from oncall_operator.domain import schedules

PRODID = "-//oncall.dev//oncall-operator//EN"
LOOKBACK = dt.timedelta(days=366)
"""How far before the window a shift's real start is looked for (the resolver walks that far back)."""
REFRESH = "PT1H"
_LIMIT = 75


def escape(text: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma escaped; newlines as ``\\n``."""
    text = text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return "".join(c for c in text if c == "\t" or (c >= " " and c != "\x7f"))


def fold(line: str) -> str:
    """Fold a content line into lines of at most 75 octets; continuation lines start with a space."""
    if len(line.encode()) <= _LIMIT:
        return line
    parts: list[str] = []
    current: list[str] = []
    size = 0
    limit = _LIMIT
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, _LIMIT - 1
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


def _utc(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def uid(name: str, role: str, start: dt.datetime, namespace: str = "") -> str:
    """The stable identity of a shift: schedule, role and start; the same shift keeps it across exports."""
    where = f"{name}.{namespace}" if namespace else name
    return f"{role}-{_utc(start)}.{where}@oncall.dev"


def _events(
    name: str,
    spec: schedule.OnCallScheduleSpec,
    start: dt.datetime,
    end: dt.datetime,
    stamp: dt.datetime,
    namespace: str,
) -> Iterator[str]:
    for role in spec.roles:
        since = max(schedules.first_instant(spec, role.name), start - LOOKBACK)
        for shift in schedules.shifts(spec, role.name, min(since, start), end):
            if shift.end <= start:
                continue
            people = " + ".join(shift.people)
            origin = "override" if shift.source == schedules.OVERRIDE else f"layer {shift.source}"
            details = f"{role.description}\n" if role.description else ""
            yield from (
                "BEGIN:VEVENT",
                f"UID:{escape(uid(name, role.name, shift.start, namespace))}",
                f"DTSTAMP:{_utc(stamp)}",
                f"DTSTART:{_utc(shift.start)}",
                f"DTEND:{_utc(shift.end)}",
                f"SUMMARY:{escape(f'{role.name}: {people}')}",
                f"DESCRIPTION:{escape(f'{details}On call for {role.name}: {people} ({origin})')}",
                f"CATEGORIES:{escape(role.name)}",
                "TRANSP:TRANSPARENT",
                "END:VEVENT",
            )


def render(
    name: str,
    spec: schedule.OnCallScheduleSpec,
    start: dt.datetime,
    end: dt.datetime,
    stamp: dt.datetime,
    *,
    namespace: str = "",
) -> str:
    """The VCALENDAR with every role's shifts overlapping [start, end); ``stamp`` is the DTSTAMP of each event.

    ``name`` is the calendar's name and, with ``namespace``, part of every UID.
    """
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape(name)}",
        f"X-WR-TIMEZONE:{escape(spec.time_zone)}",
        *([f"X-WR-CALDESC:{escape(spec.description)}"] if spec.description else []),
        f"REFRESH-INTERVAL;VALUE=DURATION:{REFRESH}",
        f"X-PUBLISHED-TTL:{REFRESH}",
        *_events(name, spec, start, end, stamp, namespace),
        "END:VCALENDAR",
    ]
    return "".join(fold(line) + "\r\n" for line in lines)
