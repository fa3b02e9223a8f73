"""Who is on call, or paged, before and after a change: the hours a schedule or policy edit moves.

A rota edit is reviewed like code, but a YAML diff of a rotation (a start date moved, an
override added) does not say whose nights it changes. This module resolves both versions over
the same window with the schedule resolver (:mod:`schedules`) and reports only the stretches
where the people differ, per role of a schedule, or per level of an escalation policy (whoever
its targets would page then). Nothing else: a reordered key or a renamed description yields no
change. Pure: the caller passes the window and, for a policy, the schedules it names.
"""

import dataclasses
import datetime as dt
import itertools
import zoneinfo
from collections.abc import Mapping, Sequence

from oncall_operator.api import policy, schedule
from oncall_operator.domain import schedules

People = tuple[str, ...]
Span = tuple[dt.datetime, dt.datetime, People]
"""[start, end) with the people on call (or paged) throughout; nobody is ``()``."""


@dataclasses.dataclass(frozen=True)
class Change:
    """A maximal stretch of ``track`` (a role, or a policy level) whose people differ between versions."""

    track: str
    start: dt.datetime
    end: dt.datetime
    before: People
    after: People


def _people_at(spans: Sequence[Span], at: dt.datetime) -> People:
    return next((people for lo, hi, people in spans if lo <= at < hi), ())


def compare(old: Mapping[str, Sequence[Span]], new: Mapping[str, Sequence[Span]], order: Sequence[str]) -> list[Change]:
    """The changes of every track in ``order`` (a track missing from one side has nobody there)."""
    out: list[Change] = []
    for track in order:
        before, after = old.get(track, ()), new.get(track, ())
        cuts = sorted({t for lo, hi, _p in (*before, *after) for t in (lo, hi)})
        for lo, hi in itertools.pairwise(cuts):
            was, now = _people_at(before, lo), _people_at(after, lo)
            if was == now:
                continue
            last = out[-1] if out else None
            if last and (last.track, last.end, last.before, last.after) == (track, lo, was, now):
                out[-1] = dataclasses.replace(last, end=hi)
            else:
                out.append(Change(track, lo, hi, was, now))
    return out


def role_spans(spec: schedule.OnCallScheduleSpec, role: str, start: dt.datetime, end: dt.datetime) -> list[Span]:
    return [(s.start, s.end, s.people) for s in schedules.shifts(spec, role, start, end)]


def _tracks(spec: schedule.OnCallScheduleSpec | None, start: dt.datetime, end: dt.datetime) -> dict[str, list[Span]]:
    return {r.name: role_spans(spec, r.name, start, end) for r in spec.roles} if spec else {}


def schedule_changes(
    old: schedule.OnCallScheduleSpec | None,
    new: schedule.OnCallScheduleSpec | None,
    start: dt.datetime,
    end: dt.datetime,
) -> list[Change]:
    """Per role (old roles first, then added ones), the hours in [start, end) whose people change.

    None stands for a schedule that does not exist (created or deleted): nobody in any role.
    """
    before, after = _tracks(old, start, end), _tracks(new, start, end)
    return compare(before, after, list(dict.fromkeys([*before, *after])))


def _merge(tracks: Sequence[Sequence[Span]], start: dt.datetime, end: dt.datetime) -> list[Span]:
    """Spans of everybody in any of ``tracks`` (first-seen order), cut where any of them changes."""
    cuts = sorted({start, end} | {t for spans in tracks for lo, hi, _p in spans for t in (lo, hi)})
    out: list[Span] = []
    for lo, hi in itertools.pairwise(cuts):
        people = tuple(dict.fromkeys(p for spans in tracks for p in _people_at(spans, lo)))
        if out and out[-1][1] == lo and out[-1][2] == people:
            out[-1] = (out[-1][0], hi, people)
        elif people:
            out.append((lo, hi, people))
    return out


def level_spans(
    level: policy.Level,
    found: Mapping[str, schedule.OnCallScheduleSpec],
    start: dt.datetime,
    end: dt.datetime,
) -> list[Span]:
    """Who ``level`` pages, over [start, end): its schedule roles' people, its users, ``team <name>``.

    A schedule missing from ``found`` is a LookupError (the caller says which one).
    """
    tracks: list[list[Span]] = []
    for target in level.targets:
        if target.schedule is not None:
            if target.schedule.name not in found:
                raise LookupError(f"schedule {target.schedule.name!r} (level {level.name}) not found")
            tracks.append(role_spans(found[target.schedule.name], target.schedule.role, start, end))
        elif target.user is not None:
            tracks.append([(start, end, (target.user,))])
        elif target.team is not None:
            tracks.append([(start, end, (f"team {target.team}",))])
    return _merge(tracks, start, end)


def _levels(
    spec: policy.EscalationPolicySpec | None,
    found: Mapping[str, schedule.OnCallScheduleSpec],
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, list[Span]]:
    """Per level, ``name (after 15m)``: who it pages over the window."""
    levels = spec.levels if spec else []
    return {f"{lv.name} (after {lv.after})": level_spans(lv, found, start, end) for lv in levels}


def policy_changes(
    old: policy.EscalationPolicySpec | None,
    new: policy.EscalationPolicySpec | None,
    old_schedules: Mapping[str, schedule.OnCallScheduleSpec],
    new_schedules: Mapping[str, schedule.OnCallScheduleSpec],
    start: dt.datetime,
    end: dt.datetime,
) -> list[Change]:
    """Per level, the hours in [start, end) whose paged people change, each version with its schedules.

    A level is named with its timing (``level-2 (after 15m)``), so a level paging later is a
    removed track and an added one.
    """
    before, after = _levels(old, old_schedules, start, end), _levels(new, new_schedules, start, end)
    return compare(before, after, list(dict.fromkeys([*before, *after])))


def _stamp(instant: dt.datetime, zone: dt.tzinfo) -> str:
    local = instant.astimezone(zone)
    return local.strftime("%a %Y-%m-%d %H:%M ") + (local.tzname() or local.strftime("%z"))


def _hours(span: dt.timedelta) -> str:
    hours, rest = divmod(int(span.total_seconds()), 3600)
    return f"{hours}h" + (f"{rest // 60:02d}m" if rest else "")


def render(changes: Sequence[Change], zone: dt.tzinfo, old_name: str, new_name: str) -> str:
    """A unified-diff-like text: one hunk per change, its hours in ``zone`` (with the zone's abbreviation)."""
    if not changes:
        return ""
    lines = [f"--- {old_name}", f"+++ {new_name}"]
    for c in changes:
        lines.append(f"@@ {c.track}: {_stamp(c.start, zone)} -> {_stamp(c.end, zone)} ({_hours(c.end - c.start)}) @@")
        lines.append(f"-{', '.join(c.before) or '(nobody)'}")
        lines.append(f"+{', '.join(c.after) or '(nobody)'}")
    return "\n".join(lines)


def zone(name: str) -> dt.tzinfo:
    """The zone the diff is shown in (UTC when the name is not an IANA zone)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC
