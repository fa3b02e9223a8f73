"""Keep an Incident writable however long it stays open: compact its lists, and fit its status in a byte budget.

An acknowledged, unresolved critical Incident on the handbook's policy sends a status update
to three channels every 15 minutes: without compaction its notifications reach the CRD's
``maxItems`` (500) after about 42 hours, and from then on every status write (each claim,
``kubectl oncall ack``) is refused with 422. And etcd refuses an object over 1.5 MiB whatever
the schema says. So:

- the timeline keeps its first entries and the latest, and the middle becomes one summary
  entry ("… 312 StatusUpdate entries … compacted"), whose counts later compactions carry on;
- the notifications keep the first and the latest, never a Pending one (it is still being
  sent) and never a step of the current escalation whose key the engine still consults; the
  repeated status updates and earlier escalations are summarised the same way;
- :func:`fit` compacts further, then shortens texts, until the serialized status is under
  :data:`STATUS_BUDGET` bytes. Every status write goes through it (``adapters/incidents.py``).

Pure: lists in, lists out, no clock.
"""

import collections
import collections.abc as cabc
import datetime as dt
import json
import re
from typing import Any, TypeVar

import pydantic_core

from oncall_operator.api import incident

T = TypeVar("T")

TIMELINE_LIMIT = 900
"""Compact when the timeline is longer (the CRD allows 1000) ..."""
TIMELINE_TARGET = 700
"""... down to this many entries, so a busy Incident is not compacted on every write."""
NOTIFICATIONS_LIMIT = 400
"""Compact when there are more notifications (the CRD allows 500) ..."""
NOTIFICATIONS_TARGET = 300
HEAD = 10
"""The first entries are always kept: how it started."""
STATUS_BUDGET = 900 * 1024
"""Bytes of serialized status; with the spec (at most ~40 KiB) an Incident stays under 1 MiB, well inside etcd's 1.5."""
ESCAPED = 3
"""At most how many times larger :func:`size`'s count is than the UTF-8 JSON: a character of two or four
bytes is written as one or two ``\\uXXXX`` escapes of six bytes each (``json.dumps``' ``ensure_ascii``)."""
COMPACTED = "Compacted"
SHORT_TEXT = 256
_COUNT = re.compile(r"(\d+) ([A-Za-z-]+)")


def squeeze(
    items: list[T], target: int, removable: cabc.Callable[[T], bool], head: int = HEAD
) -> tuple[list[T], list[T], int]:
    """Remove the oldest removable items after the first ``head`` until at most ``target`` remain.

    Returns (kept, removed, where): both in order, and how many kept items came before the
    first removed one (where a summary goes). The latest items go last, so they are kept longest.
    """
    excess = len(items) - target
    removed: list[T] = []
    kept: list[T] = []
    where = -1
    for i, item in enumerate(items):
        if excess > 0 and i >= head and removable(item):
            where = len(kept) if where < 0 else where
            removed.append(item)
            excess -= 1
        else:
            kept.append(item)
    return kept, removed, max(where, 0)


def counted(kinds: cabc.Iterable[str], summaries: cabc.Iterable[str]) -> str:
    """``312 StatusUpdate, 4 NotificationFailed``: the kinds removed now plus those earlier summaries counted."""
    counts: collections.Counter[str] = collections.Counter(kinds)
    for text in summaries:
        for number, kind in _COUNT.findall(text.split(" from ")[0]):
            counts[kind] += int(number)
    return ", ".join(f"{n} {k}" for k, n in counts.most_common())


def compact_timeline(
    timeline: list[incident.TimelineEntry], limit: int = TIMELINE_LIMIT, target: int = TIMELINE_TARGET
) -> list[incident.TimelineEntry]:
    """The timeline, with its middle summarised in one entry once it is longer than ``limit``."""
    if len(timeline) <= limit:
        return timeline
    kept, removed, where = squeeze(timeline, target - 1, lambda e: True)
    if not removed:
        return timeline
    earlier = [e.message for e in removed if e.type == COMPACTED]
    what = counted((e.type for e in removed if e.type != COMPACTED), earlier)
    summary = incident.TimelineEntry(
        at=removed[-1].at,
        type=COMPACTED,
        message=f"… {what} entries from {_when(removed[0].at)} to {_when(removed[-1].at)} compacted …",
    )
    return [*kept[:where], summary, *kept[where:]]


def compact_notifications(
    notifications: list[incident.Notification],
    protected: cabc.Callable[[incident.Notification], bool],
    limit: int = NOTIFICATIONS_LIMIT,
    target: int = NOTIFICATIONS_TARGET,
) -> list[incident.Notification]:
    """The notifications, the removable middle summarised once there are more than ``limit``.

    Never removed: Pending ones, and those ``protected`` says the engine still needs (a step of
    the current escalation whose key stops it from being sent again).
    """
    if len(notifications) <= limit:
        return notifications

    def removable(n: incident.Notification) -> bool:
        return n.result != "Pending" and not protected(n)

    kept, removed, where = squeeze(notifications, target - 1, removable)
    if not removed:
        return notifications
    earlier = [n.message for n in removed if n.result == COMPACTED]
    fresh = [n for n in removed if n.result != COMPACTED]
    what = counted((f"{n.kind}-{n.result}" for n in fresh), earlier)
    summary = incident.Notification(
        key=COMPACTED.lower(),
        at=removed[-1].at,
        level=0,
        channel="-",
        kind=COMPACTED.lower(),
        result=COMPACTED,
        message=f"… {what} notifications from {_when(removed[0].at)} to {_when(removed[-1].at)} compacted …",
    )
    return [*kept[:where], summary, *kept[where:]]


def size(status: incident.IncidentStatus) -> int:
    """Bytes of the status as it is sent (JSON, camelCase, absent values omitted)."""
    return len(json.dumps(status.wire(), separators=(",", ":")).encode())


def fitted_wire(status: incident.IncidentStatus) -> tuple[incident.IncidentStatus, dict[str, Any]]:
    """``fit(status)`` and its wire, serializing a status already under the budget once instead of twice.

    The status comes back too (``status`` itself when nothing was cut): it is what the API server
    will hold, so the writer keeps it instead of validating the server's answer again.
    """
    wired = status.wire()
    if len(pydantic_core.to_json(wired)) * ESCAPED <= STATUS_BUDGET:  # surely under :func:`size`'s count, in Rust
        return status, wired
    if len(json.dumps(wired, separators=(",", ":")).encode()) <= STATUS_BUDGET:
        return status, wired
    fitted = fit(status)
    return fitted, fitted.wire()


def fit(
    status: incident.IncidentStatus,
    protected: cabc.Callable[[incident.Notification], bool] | None = None,
    budget: int = STATUS_BUDGET,
) -> incident.IncidentStatus:
    """``status`` (a copy when anything changes) compacted and shortened until it serializes under ``budget``.

    In order, each step only while still over: halve the timeline; halve the removable
    notifications; shorten old texts (timeline messages, notification messages, the before,
    after, reason and patch of all but the latest actions); keep the latest detections. The
    facts the operator decides on (phase, guardrails, the keys of current steps, the latest
    actions) are never touched.
    """
    if size(status) <= budget:
        return status
    st = status.model_copy(deep=True)
    protected = protected or engine_needs(status)
    while size(st) > budget and len(st.timeline) > 2 * HEAD + 1:
        n = len(st.timeline)
        st.timeline = compact_timeline(st.timeline, limit=n // 2, target=n // 2)
        if len(st.timeline) >= n:
            break
    esc = st.escalation
    while size(st) > budget and len(esc.notifications) > 2 * HEAD + 1:
        n = len(esc.notifications)
        esc.notifications = compact_notifications(esc.notifications, protected, limit=n // 2, target=n // 2)
        if len(esc.notifications) >= n:
            break
    if size(st) > budget:
        for entry in st.timeline[:-HEAD]:
            entry.message = entry.message[:SHORT_TEXT]
        for note in esc.notifications:
            if note.result != "Pending":
                note.message = note.message[:SHORT_TEXT]
        for action in st.actions[:-HEAD]:
            action.before, action.after = action.before[:SHORT_TEXT], action.after[:SHORT_TEXT]
            action.reason, action.patch = action.reason[:SHORT_TEXT], action.patch[:SHORT_TEXT]
    if size(st) > budget:
        st.detections = st.detections[-HEAD:]
    return st


def engine_needs(status: incident.IncidentStatus) -> cabc.Callable[[incident.Notification], bool]:
    """Which notifications the escalation engine still consults: the steps of the current escalation.

    The engine keys a step ``<step>@<start>`` and sends a step whose key it does not find, so
    those keys stay; the numbered status updates are the exception (only the latest number is
    ever due again), and so are the steps of an earlier escalation (a reopened Incident).
    """
    started = status.escalation.started_at
    epoch = f"@{int(started.timestamp())}" if started else None

    def needed(n: incident.Notification) -> bool:
        return epoch is not None and n.key.endswith(epoch) and not n.key.startswith("status-update/")

    return needed


def _when(at: dt.datetime) -> str:
    return at.isoformat()
