"""A schedule's next days drawn as an SVG: one row per role, who holds each stretch, overrides and gaps.

Drawn on real time (x is proportional to elapsed seconds) with grid lines at local midnights,
so a DST day is visibly an hour shorter or longer and a 09:00 handoff stays on the 09:00 mark.
Every shift and gap carries a ``<title>`` naming the person and the local times, which is what a
browser shows on hover and what the tests read. Pure: the caller passes the window and ``now``.
"""

import datetime as dt
import html
import zlib

from oncall_operator.api import schedule
from oncall_operator.domain import schedules

WIDTH = 1400
LABEL = 150
ROW = 34
HEADER = 46


def local_text(instant: dt.datetime, zone: dt.tzinfo) -> str:
    """``Mon 30 Mar 09:00 CEST``."""
    local = instant.astimezone(zone)
    return local.strftime("%a %d %b %H:%M ") + (local.tzname() or "")


def colour(person: str) -> str:
    """A stable pastel per person, so a name has the same colour on every schedule."""
    return f"hsl({zlib.crc32(person.encode()) % 360}, 60%, 78%)"


def _midnights(zone: dt.tzinfo, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    day = start.astimezone(zone).date()
    out = []
    while (at := schedules.local_instant(zone, day, dt.time(0, 0))) <= end:
        if at >= start:
            out.append(at)
        day += dt.timedelta(days=1)
    return out


def render(spec: schedule.OnCallScheduleSpec, start: dt.datetime, days: int, now: dt.datetime) -> str:
    zone = schedules.zone_of(spec)
    end = start + dt.timedelta(days=days)
    scale = (WIDTH - LABEL) / (end - start).total_seconds()

    def x(at: dt.datetime) -> float:
        return round(LABEL + (min(max(at, start), end) - start).total_seconds() * scale, 1)

    height = HEADER + ROW * len(spec.roles) + 6
    out = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" role="img">',
        '<defs><pattern id="gap" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="4" height="8" fill="#e5484d"/></pattern></defs>',
    ]
    for midnight in _midnights(zone, start, end):
        local = midnight.astimezone(zone)
        following = schedules.local_instant(zone, local.date() + dt.timedelta(days=1), dt.time(0, 0))
        hours = round((following - midnight).total_seconds() / 3600)
        out.append(f'<line x1="{x(midnight)}" y1="{HEADER - 28}" x2="{x(midnight)}" y2="{height}" class="day"/>')
        out.append(
            f'<text x="{x(midnight) + 3}" y="{HEADER - 18}" class="daylabel">{local.strftime("%a %d %b")}</text>'
        )
        if hours != 24:  # a DST change: the day is drawn shorter or longer, and says so
            end_zone = html.escape(following.astimezone(zone).tzname() or "")
            note = f"{hours}h, then {end_zone}"
            out.append(f'<text x="{x(midnight) + 3}" y="{HEADER - 5}" class="dst">{note}</text>')
    holes = schedules.gaps(spec, start, end - start)
    for row, role in enumerate(spec.roles):
        top = HEADER + row * ROW
        out.append(f'<text x="4" y="{top + ROW / 2 + 5}" class="role">{html.escape(role.name)}</text>')
        for shift in schedules.shifts(spec, role.name, start, end):
            names = ", ".join(shift.people)
            kind = "override" if shift.source == schedules.OVERRIDE else "shift"
            left, right = x(shift.start), x(shift.end)
            tip = f"{role.name}: {names} ({kind}), {local_text(shift.start, zone)} to {local_text(shift.end, zone)}"
            out.append(
                f'<g class="{kind}" data-role="{html.escape(role.name)}" data-person="{html.escape(names)}">'
                f"<title>{html.escape(tip)}</title>"
                f'<rect x="{left}" y="{top + 3}" width="{round(right - left, 1)}" height="{ROW - 6}" '
                f'fill="{colour(names)}"/>'
            )
            room = int((right - left) / 8)
            if room >= 4:
                label = names if len(names) <= room else names[: room - 1] + "…"
                out.append(f'<text x="{left + 4}" y="{top + ROW / 2 + 5}" class="who">{html.escape(label)}</text>')
            out.append("</g>")
        for gap in (g for g in holes if g.role == role.name):
            tip = f"{role.name}: nobody on call (gap), {local_text(gap.start, zone)} to {local_text(gap.end, zone)}"
            out.append(
                f'<g class="gap" data-role="{html.escape(role.name)}"><title>{html.escape(tip)}</title>'
                f'<rect x="{x(gap.start)}" y="{top + 3}" width="{round(x(gap.end) - x(gap.start), 1)}" '
                f'height="{ROW - 6}" fill="url(#gap)"/></g>'
            )
    if start <= now < end:
        out.append(f'<line x1="{x(now)}" y1="{HEADER - 14}" x2="{x(now)}" y2="{height}" class="now"/>')
    out.append("</svg>")
    return "\n".join(out)
