"""Maintenance windows: is this Incident muted at ``now``, for what, by which window, and until when.

Pure: the windows (parsed specs with their namespace and name), the Incident's namespace and
labels, and ``now`` go in; a :class:`Mute` comes out. The escalation executor asks
:func:`muted` before it claims a page and skips it until the window ends; both planners of
automatic actions get the window that pauses them through :func:`pausing` and the shared
guardrail in :mod:`.guardrails`.

Recurring windows follow Alertmanager's ``time_intervals``: a day matches when its weekday,
day of month and month are all listed (an empty list matches all), and the window is open
during the listed times of that day (none listed: the whole day), in the window's IANA zone.
Local times the clock skips or repeats follow the schedules' rule (:func:`schedules.local_instant`),
so a window opens and closes at the local times written, across DST changes. Openings that
touch (``Sat 00:00-24:00`` and ``Sun 00:00-24:00``) are one opening.
"""

import calendar
import collections.abc as cabc
import dataclasses
import datetime as dt
import zoneinfo

from oncall_operator.api import base, incident, maintenance
from oncall_operator.domain import conditions, lifecycle, matching, schedules

UTC = dt.UTC
HORIZON_DAYS = 400
"""How far ahead the next opening is looked for (a window listing only Feb 29 may have none)."""
LOOKBACK_DAYS = 7
"""How far back an opening that lasts until now is followed to its start (an every-day window never starts)."""
_WEEKDAYS = {day: n for n, day in enumerate(base.Weekday)}
Mutes = maintenance.Mutes
CONDITION = "InMaintenance"
HELD = "InMaintenance"
"""The result of a runbook message a window holds, until the window ends."""


@dataclasses.dataclass(frozen=True)
class Window:
    namespace: str
    name: str
    spec: maintenance.MaintenanceWindowSpec

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Opening:
    start: dt.datetime
    end: dt.datetime


@dataclasses.dataclass(frozen=True)
class Mute:
    """The window that mutes something now, and until when it does."""

    window: str
    until: dt.datetime
    reason: str = ""

    def text(self, what: str) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{what} muted by MaintenanceWindow {self.window}{why} until {self.until.isoformat()}"


def _days(spec: maintenance.Recurrence, day: dt.date) -> bool:
    if spec.weekdays and day.weekday() not in {_WEEKDAYS[w] for w in spec.weekdays}:
        return False
    if spec.months and day.month not in spec.months:
        return False
    if spec.days_of_month:
        last = calendar.monthrange(day.year, day.month)[1]
        wanted = {d if d > 0 else last + 1 + d for d in spec.days_of_month}
        if day.day not in wanted:
            return False
    return True


def _clock(text: str) -> tuple[int, dt.time]:
    """(day offset, time) of ``HH:MM``; ``24:00`` is the next day's midnight."""
    if text == "24:00":
        return 1, dt.time(0, 0)
    hours, minutes = text.split(":")
    return 0, dt.time(int(hours), int(minutes))


def _day_openings(spec: maintenance.Recurrence, zone: dt.tzinfo, day: dt.date) -> list[Opening]:
    if not _days(spec, day):
        return []
    ranges = spec.times or [maintenance.TimeRange(start="00:00", end="24:00")]
    out = []
    for r in sorted(ranges, key=lambda r: r.start):
        (s_off, s_time), (e_off, e_time) = _clock(r.start), _clock(r.end)
        start = schedules.local_instant(zone, day + dt.timedelta(days=s_off), s_time)
        end = schedules.local_instant(zone, day + dt.timedelta(days=e_off), e_time)
        if end > start:
            out.append(Opening(start, end))
    return out


def current_or_next(spec: maintenance.MaintenanceWindowSpec, now: dt.datetime) -> Opening | None:
    """The opening ``now`` is in, else the next one; None when the window will not open again."""
    if spec.recurring is None:
        if spec.start is None or spec.end is None or spec.end <= now:
            return None
        return Opening(spec.start, spec.end)
    rec = spec.recurring
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(rec.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None  # reported as Ready=False by the window's own check; a bad zone mutes nothing
    first = now.astimezone(zone).date() - dt.timedelta(days=LOOKBACK_DAYS)
    chain: Opening | None = None  # the openings seen so far that touch, merged
    for n in range(HORIZON_DAYS + LOOKBACK_DAYS):
        day = first + dt.timedelta(days=n)
        for o in _day_openings(rec, zone, day):
            if chain is not None and o.start <= chain.end:
                chain = Opening(chain.start, max(chain.end, o.end))
                continue
            if chain is not None and chain.end > now:
                return chain
            chain = o
        if chain is not None and now < chain.end < schedules.local_instant(zone, day + dt.timedelta(days=1), dt.time()):
            return chain  # the next day's openings cannot touch it
    return chain if chain is not None and chain.end > now else None


def active(spec: maintenance.MaintenanceWindowSpec, now: dt.datetime) -> Opening | None:
    o = current_or_next(spec, now)
    return o if o is not None and o.start <= now else None


def covers_namespace(window: Window, namespace: str, operator_namespace: str) -> bool:
    """A window covers its own namespace; only a window in the operator's namespace reaches others."""
    listed = window.spec.scope.namespaces
    if window.namespace != operator_namespace:
        return namespace == window.namespace and (not listed or namespace in listed)
    return not listed or namespace in listed


def covers(
    window: Window,
    namespace: str,
    labels: cabc.Mapping[str, str],
    workload_labels: cabc.Mapping[str, str] | None,
    operator_namespace: str,
) -> bool:
    """Whether the window's scope takes in an Incident (or a change) in ``namespace`` with these labels.

    ``workload_labels`` None: not known, so a window with a workload selector does not cover it.
    """
    scope = window.spec.scope
    if not covers_namespace(window, namespace, operator_namespace):
        return False
    selector = scope.workload_selector
    if selector and (workload_labels is None or any(workload_labels.get(k) != v for k, v in selector.items())):
        return False
    return matching.matches(scope.matchers, labels)


def muted(
    windows: cabc.Iterable[Window],
    what: Mutes,
    namespace: str,
    labels: cabc.Mapping[str, str],
    workload_labels: cabc.Mapping[str, str] | None,
    operator_namespace: str,
    now: dt.datetime,
) -> Mute | None:
    """The active window muting ``what`` (Pages or Actions) here, the one that ends last; or None."""
    found: list[Mute] = []
    for w in windows:
        if w.spec.mutes not in (what, Mutes.ALL):
            continue
        opening = active(w.spec, now)
        if opening is not None and covers(w, namespace, labels, workload_labels, operator_namespace):
            found.append(Mute(w.ref, opening.end, w.spec.reason[:200]))
    return max(found, key=lambda m: (m.until, m.window), default=None)


def selects_workloads(
    windows: cabc.Iterable[Window], what: Mutes, namespace: str, operator_namespace: str, now: dt.datetime
) -> bool:
    """Whether an active window muting ``what`` in ``namespace`` has a workload selector (so the labels matter)."""
    return any(
        w.spec.mutes in (what, Mutes.ALL)
        and w.spec.scope.workload_selector
        and covers_namespace(w, namespace, operator_namespace)
        and active(w.spec, now) is not None
        for w in windows
    )


def mark(conds: list[base.Condition], mute: Mute | None, now: dt.datetime) -> tuple[list[base.Condition], str | None]:
    """The Incident's ``InMaintenance`` condition for ``mute``, and the timeline message when it flips or changes."""
    previous = next((c for c in conds if c.type == CONDITION), None)
    if mute is None:
        if previous is None or previous.status != base.ConditionStatus.TRUE:
            return conds, None
        updated = conditions.put(conds, CONDITION, base.ConditionStatus.FALSE, "WindowEnded", "", None, now)
        return updated, f"maintenance over ({previous.message}): the escalation starts again from level 1"
    message = mute.text("pages")
    if previous is not None and previous.status == base.ConditionStatus.TRUE and previous.message == message:
        return conds, None
    return conditions.put(conds, CONDITION, base.ConditionStatus.TRUE, "MaintenanceWindow", message, None, now), message


def in_maintenance(status: incident.IncidentStatus) -> bool:
    return any(c.type == CONDITION and c.status == base.ConditionStatus.TRUE for c in status.conditions)


def _marked(status: incident.IncidentStatus, mute: Mute | None, now: dt.datetime) -> incident.IncidentStatus | None:
    """A copy with the condition for ``mute`` and its timeline entry; None when the status says so already."""
    conds, said = mark(status.conditions, mute, now)
    if said is None:
        return None
    st = status.model_copy(deep=True)
    st.conditions = conds
    return lifecycle.add(st, now, "Maintenance" if mute else "MaintenanceEnded", said)


def hold(status: incident.IncidentStatus, mute: Mute, now: dt.datetime) -> incident.IncidentStatus | None:
    """The status saying its pages are held back by ``mute`` (once per window), or None when it says so already."""
    return _marked(status, mute, now)


def hold_message(
    status: incident.IncidentStatus,
    mute: Mute,
    key: str,
    kind: str,
    channels: cabc.Sequence[str],
    text: str,
    now: dt.datetime,
) -> incident.IncidentStatus:
    """A runbook's message held by ``mute``: its notifications wait (result ``InMaintenance``) for the window's end."""
    st = _marked(status, mute, now) or status.model_copy(deep=True)
    if not any(n.key == key for n in st.escalation.notifications):
        for channel in channels:
            note = incident.Notification(key=key, at=now, level=0, channel=channel, kind=kind, result=HELD, text=text)
            st.escalation.notifications.append(note)
    return st


def resume(status: incident.IncidentStatus, now: dt.datetime) -> incident.IncidentStatus:
    """After the window: the condition flips, an open Incident's escalation starts again from level 1 now,
    and the messages the window held become due (Pending, unclaimed: the escalation sends them)."""
    st = _marked(status, None, now)
    if st is None:
        return status
    if st.phase != incident.Phase.RESOLVED:
        esc = st.escalation
        esc.started_at, esc.level, esc.loop, esc.closed = now, 0, 0, False
        esc.next_step_at = esc.next_reminder_at = None
        for n in esc.notifications:
            if n.result == HELD:
                n.result, n.at, n.claimed_by, n.retry_at, n.attempts = "Pending", now, "", None, 0
    return st


def status(spec: maintenance.MaintenanceWindowSpec, now: dt.datetime) -> tuple[bool, Opening | None]:
    """(active, the current or next opening) for the window's status."""
    o = current_or_next(spec, now)
    return (o is not None and o.start <= now), o


def check(window: Window, operator_namespace: str) -> conditions.Verdict:
    """What the API server cannot check: the zone exists, and other namespaces only from the operator's."""
    rec = window.spec.recurring
    if rec is not None:
        try:
            zoneinfo.ZoneInfo(rec.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return conditions.Verdict(False, "UnknownTimeZone", f"time zone {rec.time_zone!r} is not an IANA zone")
    others = sorted(set(window.spec.scope.namespaces) - {window.namespace})
    if others and window.namespace != operator_namespace:
        return conditions.Verdict(
            False,
            "NamespacesNotAllowed",
            f"only a window in the operator's namespace {operator_namespace} may cover other namespaces; "
            f"this one covers only {window.namespace} (ignored: {', '.join(others[:10])})",
        )
    return conditions.Verdict(True, "Accepted", "")
