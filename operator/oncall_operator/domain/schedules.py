"""Who is on call, per role, at any instant: the pure resolver behind OnCallSchedule status and its feed.

The failures users of PagerDuty and Grafana OnCall meet most are rotations that slip by an hour at
a DST change, coverage gaps nobody notices, and overrides that cannot stack. So this module:

- computes handoffs on the schedule's local wall clock (turn ``k`` starts at ``handoffTime`` on
  ``start + k x turnLength`` in calendar days), so a Monday 09:00 handoff stays 09:00 in summer and
  in winter; only turns that are not whole days (``12h``, ``36h``) count elapsed time from the first
  handoff instant;
- resolves a role by walking the instants where something can change (turn changes, restriction
  edges, override edges) rather than sampling minutes, which keeps a 14-day status in a few ms;
- lets overrides stack (the one listed later wins) over layers (the one listed later wins where it
  has somebody), and reports gaps telling a hole from intended off-hours (``Role.coverage``).

Local times that do not exist or exist twice (DST gap or fold) follow one rule, :func:`local_instant`:
the first instant at which the wall clock shows that time or later. In a spring-forward gap that is
the end of the gap (a 02:30 handoff happens at 03:00, when the clock jumps past 02:30); in a
fall-back fold it is the first occurrence (02:30 summer time). The rule is monotonic, so a window
never ends before it starts, and nobody's turn grows or shrinks by more than the clock change itself.
RFC 5545's rule (shift by the gap length: 02:30 becomes 03:30) is not monotonic and would hand off
half an hour after the clock already passed the handoff time.

Everything here is a function of the spec and the instant passed in: no clock, no I/O. Instants in
and out are timezone-aware; results are in UTC. An override written without an offset is read on
the schedule's wall clock. A spec is assumed to have passed :func:`checks.check_schedule` (a valid
IANA zone; layers with a turn under a minute are ignored here, the check reports them).
"""

import dataclasses
import datetime as dt
import functools
import itertools
import zoneinfo
from collections.abc import Iterable, Sequence

from oncall_operator.api import base, durations, schedule
from oncall_operator.domain import conditions

UTC = dt.UTC
HORIZON = dt.timedelta(days=14)
"""How far ahead status looks for gaps."""
OVERRIDE = "override"
"""The :attr:`Shift.source` of time covered by an override (otherwise it is the layer's name)."""
MIN_TURN = dt.timedelta(minutes=1)
COVERAGE_GAP = "CoverageGap"
COVERED = "Covered"
MAX_GAPS = 100
"""Status keeps at most this many gaps (the CRD's bound); the condition message counts all of them."""
SUMMARY_LIMIT = 1024
MAX_LOOKAHEAD = dt.timedelta(days=367)
"""The furthest ahead the next handoff is looked for (a turn longer than a year is not worth a longer walk)."""

_DAY = dt.timedelta(days=1)
_SECOND = dt.timedelta(seconds=1)
_WEEKDAYS = {day: n for n, day in enumerate(base.Weekday)}


@dataclasses.dataclass(frozen=True)
class Shift:
    """A maximal stretch of time in which a role has the same people from the same source."""

    role: str
    start: dt.datetime
    end: dt.datetime
    people: tuple[str, ...]
    source: str
    """The layer's name, or :data:`OVERRIDE`."""


@dataclasses.dataclass(frozen=True)
class _Segment:
    start: dt.datetime
    end: dt.datetime
    people: tuple[str, ...]
    source: str
    meant: bool
    """Inside some layer's restriction window (always true for a layer without restrictions)."""


_Span = tuple[dt.datetime, dt.datetime]
_Piece = tuple[dt.datetime, dt.datetime, str]


@functools.lru_cache(maxsize=8192)
def local_instant(zone: dt.tzinfo, day: dt.date, clock: dt.time) -> dt.datetime:
    """The first instant (UTC) at which the wall clock in ``zone`` shows ``clock`` on ``day`` or later.

    An ordinary time maps to its instant; an ambiguous one (DST fold) to its first occurrence; a
    nonexistent one (DST gap) to the end of the gap, the moment the clock jumps past it.
    """
    wall = dt.datetime.combine(day, clock)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap the two folds use the offsets before and after it; the jump lies between them.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, other), max(first, other)
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) // 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi


@functools.lru_cache(maxsize=1024)
def _clock(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


@functools.lru_cache(maxsize=1024)
def _length(text: str) -> dt.timedelta:
    return durations.parse(text)


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def _instant(zone: dt.tzinfo, value: dt.datetime) -> dt.datetime:
    """An override time: as written when it has an offset, else on the schedule's wall clock."""
    if value.tzinfo is None or value.utcoffset() is None:
        return local_instant(zone, value.date(), value.time())
    return value.astimezone(UTC)


def zone_of(spec: schedule.OnCallScheduleSpec) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(spec.time_zone)


class _Rotation:
    """Turn arithmetic for one layer's rotation."""

    def __init__(self, zone: dt.tzinfo, rotation: schedule.Rotation) -> None:
        self.zone = zone
        self.participants = rotation.participants
        self.start = rotation.start
        self.handoff = _clock(rotation.handoff_time)
        self.length = _length(rotation.turn_length)
        whole_days = self.length % _DAY == dt.timedelta(0)
        self.days = self.length // _DAY if whole_days else 0
        self.first = local_instant(zone, self.start, self.handoff)

    @property
    def valid(self) -> bool:
        return self.length >= MIN_TURN

    def begin(self, k: int) -> dt.datetime:
        """When turn ``k`` (0 = the first participant's first turn) starts."""
        if self.days:
            return local_instant(self.zone, self.start + dt.timedelta(days=k * self.days), self.handoff)
        return self.first + k * self.length

    def turn_at(self, at: dt.datetime) -> int:
        """The turn running at ``at``; -1 before the rotation starts."""
        if at < self.first:
            return -1
        if not self.days:
            return (at - self.first) // self.length
        k = max((at.astimezone(self.zone).date() - self.start).days // self.days, 0)
        while k > 0 and self.begin(k) > at:
            k -= 1
        while self.begin(k + 1) <= at:
            k += 1
        return k

    def pieces(self, start: dt.datetime, end: dt.datetime) -> list[_Piece]:
        """The turns overlapping [start, end), clipped to it."""
        out: list[_Piece] = []
        k = max(self.turn_at(start), 0)
        begin = self.begin(k)
        while begin < end:
            following = self.begin(k + 1)
            if following > start:
                out.append((max(begin, start), min(following, end), self.participants[k % len(self.participants)]))
            k, begin = k + 1, following
        return out


def _union(spans: Iterable[_Span]) -> list[_Span]:
    out: list[_Span] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _windows(zone: dt.tzinfo, layer: schedule.Layer, start: dt.datetime, end: dt.datetime) -> list[_Span] | None:
    """The layer's restriction windows overlapping [start, end), clipped and merged; None = unrestricted.

    A window belongs to the weekday it starts on: ``Fri 22:00-06:00`` runs into Saturday morning.
    """
    if not layer.restrictions:
        return None
    rules = [
        ({_WEEKDAYS[d] for d in r.days}, _clock(r.from_), _clock(r.to), r.to <= r.from_) for r in layer.restrictions
    ]
    day = start.astimezone(zone).date() - _DAY
    last = end.astimezone(zone).date()
    spans: list[_Span] = []
    while day <= last:
        weekday = day.weekday()
        for days, frm, to, wraps in rules:
            if weekday not in days:
                continue
            lo = local_instant(zone, day, frm)
            hi = local_instant(zone, day + _DAY if wraps else day, to)
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                spans.append((lo, hi))
        day += _DAY
    return _union(spans)


def _intersect(pieces: list[_Piece], windows: list[_Span]) -> list[_Piece]:
    out: list[_Piece] = []
    i = j = 0
    while i < len(pieces) and j < len(windows):
        lo = max(pieces[i][0], windows[j][0])
        hi = min(pieces[i][1], windows[j][1])
        if lo < hi:
            out.append((lo, hi, pieces[i][2]))
        if pieces[i][1] <= windows[j][1]:
            i += 1
        else:
            j += 1
    return out


class _Cursor:
    """Walks a sorted list of disjoint intervals alongside increasing instants."""

    def __init__(self, spans: Sequence[_Span]) -> None:
        self.spans = spans
        self.i = 0

    def at(self, instant: dt.datetime) -> int | None:
        while self.i < len(self.spans) and self.spans[self.i][1] <= instant:
            self.i += 1
        if self.i < len(self.spans) and self.spans[self.i][0] <= instant:
            return self.i
        return None


def _role(spec: schedule.OnCallScheduleSpec, name: str) -> schedule.Role:
    for role in spec.roles:
        if role.name == name:
            return role
    raise LookupError(f"schedule has no role {name!r} (roles: {', '.join(r.name for r in spec.roles)})")


def _timeline(
    spec: schedule.OnCallScheduleSpec, role: schedule.Role, start: dt.datetime, end: dt.datetime
) -> list[_Segment]:
    """[start, end) cut into maximal segments of the same people and source (and, when empty, meaning)."""
    zone = zone_of(spec)
    layers: list[tuple[str, list[_Piece]]] = []
    windows: list[_Span] = []
    unrestricted = False
    for layer in role.layers:
        rotation = _Rotation(zone, layer.rotation)
        restricted = _windows(zone, layer, start, end)
        if restricted is None:
            unrestricted = True
        else:
            windows += restricted
        if not rotation.valid:
            continue
        pieces = rotation.pieces(start, end)
        layers.append((layer.name, pieces if restricted is None else _intersect(pieces, restricted)))
    meant = [(start, end)] if unrestricted else _union(windows)
    overrides: list[tuple[dt.datetime, dt.datetime, str]] = []
    for override in spec.overrides:
        if override.role != role.name:
            continue
        lo, hi = max(_instant(zone, override.start), start), min(_instant(zone, override.end), end)
        if lo < hi:
            overrides.append((lo, hi, override.user))
    overrides.reverse()  # the one listed later wins

    cuts = {start, end}
    for _, pieces in layers:
        for lo, hi, _person in pieces:
            cuts.update((lo, hi))
    for lo, hi in meant:
        cuts.update((lo, hi))
    for lo, hi, _user in overrides:
        cuts.update((lo, hi))
    instants = sorted(cuts)

    cursors = [(name, pieces, _Cursor([(lo, hi) for lo, hi, _person in pieces])) for name, pieces in reversed(layers)]
    window = _Cursor(meant)
    out: list[_Segment] = []
    for lo, hi in itertools.pairwise(instants):
        people: tuple[str, ...] = ()
        source = ""
        for olo, ohi, user in overrides:
            if olo <= lo < ohi:
                people, source = (user,), OVERRIDE
                break
        for name, pieces, cursor in cursors:
            found = cursor.at(lo)
            if not people and found is not None:
                people, source = (pieces[found][2],), name
        inside = window.at(lo) is not None
        previous = out[-1] if out else None
        if (
            previous is not None
            and previous.people == people
            and previous.source == source
            and (people or previous.meant == inside)
        ):
            out[-1] = dataclasses.replace(previous, end=hi, meant=previous.meant or inside)
        else:
            out.append(_Segment(lo, hi, people, source, inside))
    return out


def first_instant(spec: schedule.OnCallScheduleSpec, role: str) -> dt.datetime:
    """The earliest instant anybody can be on call in ``role``: its first handoff or first override."""
    zone = zone_of(spec)
    found = _role(spec, role)
    starts = [local_instant(zone, layer.rotation.start, _clock(layer.rotation.handoff_time)) for layer in found.layers]
    starts += [_instant(zone, o.start) for o in spec.overrides if o.role == role]
    return min(starts)


def shifts(spec: schedule.OnCallScheduleSpec, role: str, start: dt.datetime, end: dt.datetime) -> list[Shift]:
    """The role's shifts overlapping [start, end), clipped to it; time with nobody on call is left out."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return []
    return [
        Shift(role, s.start, s.end, s.people, s.source)
        for s in _timeline(spec, _role(spec, role), start, end)
        if s.people
    ]


def on_call(spec: schedule.OnCallScheduleSpec, at: dt.datetime) -> dict[str, list[str]]:
    """Role name -> the people on call at ``at`` (one, or nobody), for every role in spec order."""
    at = _aware(at, "at")
    return {role.name: list(_timeline(spec, role, at, at + _SECOND)[0].people) for role in spec.roles}


def _lookahead(role: schedule.Role, horizon: dt.timedelta) -> dt.timedelta:
    """How far to look for a role's next handoff: its longest turn (a day more for DST), at most a year."""
    turns = [_length(layer.rotation.turn_length) for layer in role.layers]
    return min(max([horizon, *turns]) + _DAY, MAX_LOOKAHEAD)


@dataclasses.dataclass(frozen=True)
class _RoleView:
    people: tuple[str, ...]
    until: dt.datetime | None
    next: tuple[str, ...]
    gaps: list[schedule.Gap]


def _view(spec: schedule.OnCallScheduleSpec, role: schedule.Role, now: dt.datetime, horizon: dt.timedelta) -> _RoleView:
    end = now + horizon
    segments = _timeline(spec, role, now, end)
    current = segments[0].people
    change = next((s for s in segments if s.people != current), None)
    if change is None and now + _lookahead(role, horizon) > end:  # nothing changes within the horizon: look further
        segments = _timeline(spec, role, now, now + _lookahead(role, horizon))
        change = next((s for s in segments if s.people != current), None)
    gaps: list[schedule.Gap] = []
    for s in segments:
        if s.start >= end:
            break
        if s.people or (role.coverage == schedule.Coverage.RESTRICTED and not s.meant):
            continue
        if gaps and gaps[-1].end == s.start:
            gaps[-1] = gaps[-1].model_copy(update={"end": min(s.end, end)})
        else:
            gaps.append(schedule.Gap(role=role.name, start=s.start, end=min(s.end, end)))
    return _RoleView(
        current,
        None if change is None else change.start,
        () if change is None else change.people,
        gaps,
    )


def _views(spec: schedule.OnCallScheduleSpec, now: dt.datetime, horizon: dt.timedelta) -> list[_RoleView]:
    return [_view(spec, role, now, horizon) for role in spec.roles]


def _holes(spec: schedule.OnCallScheduleSpec, views: list[_RoleView]) -> list[schedule.Gap]:
    order = {role.name: n for n, role in enumerate(spec.roles)}
    return sorted((g for v in views for g in v.gaps), key=lambda g: (g.start, order[g.role]))


def next_handoff(spec: schedule.OnCallScheduleSpec, now: dt.datetime) -> dt.datetime | None:
    """The next instant after ``now`` at which any role's people change.

    Looked for up to each role's longest turn (a day more, and at least :data:`HORIZON`, at most
    :data:`MAX_LOOKAHEAD`); None when nothing changes in that time (e.g. one person always on call).
    """
    untils = [v.until for v in _views(spec, _aware(now, "now"), HORIZON) if v.until is not None]
    return min(untils, default=None)


def gaps(spec: schedule.OnCallScheduleSpec, now: dt.datetime, horizon: dt.timedelta = HORIZON) -> list[schedule.Gap]:
    """Holes in [now, now + horizon): nobody on call where the role's coverage says somebody should be.

    Sorted by start, then by the role's position in the spec.
    """
    return _holes(spec, _views(spec, _aware(now, "now"), horizon))


def summary(spec: schedule.OnCallScheduleSpec, people: dict[str, list[str]], only: Iterable[str] | None = None) -> str:
    """``primary=DevOps Lead, secondary=CTO / Engineering Manager, crm-support=-`` (``-``: nobody now).

    Every role in spec order, or only the roles named in ``only``.
    """
    named = None if only is None else set(only)
    roles = [role for role in spec.roles if named is None or role.name in named]
    text = ", ".join(f"{role.name}={' + '.join(people.get(role.name, [])) or '-'}" for role in roles)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def status(
    spec: schedule.OnCallScheduleSpec, now: dt.datetime, horizon: dt.timedelta = HORIZON
) -> schedule.OnCallScheduleStatus:
    """Everything status shows but the conditions (and observedGeneration), which the handler adds.

    Use :func:`coverage_verdict` on ``gaps(spec, now)`` (or on the returned ``gaps``, which keeps at
    most :data:`MAX_GAPS`) for the coverage condition.
    """
    now = _aware(now, "now")
    views = _views(spec, now, horizon)
    untils = [v.until for v in views if v.until is not None]
    handoff = min(untils, default=None)
    taking_over = {
        role.name: list(v.next) for role, v in zip(spec.roles, views, strict=True) if handoff and v.until == handoff
    }
    return schedule.OnCallScheduleStatus(
        on_call=summary(spec, {role.name: list(v.people) for role, v in zip(spec.roles, views, strict=True)}),
        next_handoff=handoff,
        next_on_call=summary(spec, taking_over, only=taking_over.keys()),
        roles=[
            schedule.RoleStatus(role=role.name, on_call=list(v.people), until=v.until, next=list(v.next))
            for role, v in zip(spec.roles, views, strict=True)
        ],
        gaps=_holes(spec, views)[:MAX_GAPS],
    )


def _stamp(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def coverage_verdict(found: Sequence[schedule.Gap], horizon: dt.timedelta = HORIZON) -> conditions.Verdict:
    """The coverage condition: ``Covered``, or ``CoverageGap`` naming the first hole and the roles with holes."""
    ahead = f"{horizon.days} days" if horizon % _DAY == dt.timedelta(0) else durations.render(horizon)
    if not found:
        return conditions.Verdict(True, COVERED, f"every role has somebody on call for the next {ahead}")
    first = min(found, key=lambda g: g.start)
    message = f"{first.role} has nobody on call from {_stamp(first.start)} to {_stamp(first.end)}"
    if len(found) > 1:
        roles = ", ".join(dict.fromkeys(g.role for g in found))
        message += f"; {len(found)} gaps in the next {ahead} (roles: {roles})"
    return conditions.Verdict(False, COVERAGE_GAP, message)
