"""What an Incident's own status says about when something of it may be due, read from the raw body.

The escalation engine decides on a validated Incident; these answers come before it, on the JSON
as the watch brings it, and they must be cheap: :mod:`oncall_operator.executor.open_incidents`
trusts :func:`hint` to wait for a step instead of looking at once (the last acting replica's
judgement, written in the status), and a listing of 10,000 open Incidents hands each on by its
:func:`rank` (issue 18). None of them reads the clock: ``now`` is given.
"""

import collections.abc as cabc
import datetime as dt
from typing import Any

from oncall_operator.api import incident
from oncall_operator.domain import delivery, maintenance, page_budget, timestamps

HELD_BACK = (delivery.PENDING, page_budget.HELD, maintenance.HELD)
"""Notification results that may be due before the next step: a claim to send again, a held page."""
HELD_BY_WINDOW = (maintenance.CONDITION, "True")

LIST_SLACK = dt.timedelta(seconds=60)
"""How far off an open Incident's next step must be for a listing to hand it on after the others."""
AT_ONCE, AFTER, LAST = 0, 1, 2
"""The ranks of a listed Incident (:func:`rank`)."""


def rank(body: cabc.Mapping[str, Any], now: dt.datetime) -> int:
    """When a listing hands an Incident on (issue 18: a takeover lists 10,000, and a due page late in the list
    waited for every Incident before it to be judged).

    :data:`AT_ONCE`: something may be due now or within :data:`LIST_SLACK` (a step, a reminder, a claim
    to send again, a held page, an opening). :data:`AFTER`, once the whole list is read: its status
    names nothing due soon, but a look may still tell an acknowledgement or a resolution, or find a
    step a changed policy adds. :data:`LAST`: its next step is further off than the slack, or it is
    Resolved with everybody told.
    """
    status = body.get("status") or {}
    if not is_open(status):
        return LAST if status.get("phase") == incident.Phase.RESOLVED.value else AT_ONCE
    due = hint(status)
    if due is not None:
        return LAST if due > now + LIST_SLACK else AT_ONCE
    return AFTER if quiet(status, now) else AT_ONCE


def quiet(status: cabc.Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether an open Incident's status says no page of it can be due within :data:`LIST_SLACK`: its first
    page went out, nothing is Pending or held, no window holds it, and no time it names is near."""
    esc = status.get("escalation") or {}
    if not esc.get("startedAt") or not esc.get("level") or held(status):
        return False
    return all(t is not None and t > now + LIST_SLACK for t in named_times(esc))


def unopened(body: cabc.Mapping[str, Any]) -> bool:
    """Made, and not opened yet: no phase in its status."""
    return not (body.get("status") or {}).get("phase")


def is_open(status: cabc.Mapping[str, Any]) -> bool:
    """Opened, and not Resolved with everybody told: the escalation may still have something to send."""
    phase = status.get("phase")
    return bool(phase) and not (phase == incident.Phase.RESOLVED.value and status.get("escalation", {}).get("closed"))


def hint(status: cabc.Mapping[str, Any]) -> dt.datetime | None:
    """When a Triggered Incident's escalation says its next step is due, if nothing else may be due before.

    None (look now) for any other phase (an acknowledgement or a resolution may still be told), a
    Pending or Held notification (a claim to send again, a page held by the budget), a maintenance
    window holding its pages, or a status that names no next step.
    """
    esc = status.get("escalation") or {}
    if status.get("phase") != incident.Phase.TRIGGERED.value or not esc.get("startedAt") or not esc.get("nextStepAt"):
        return None
    if held(status):
        return None
    times = named_times(esc)
    return None if None in times else min(t for t in times if t is not None)


def held(status: cabc.Mapping[str, Any]) -> bool:
    """A maintenance window holds its pages, or a notification is Pending (a claim to send again) or held."""
    conds = status.get("conditions") or ()
    if any(not isinstance(c, cabc.Mapping) or (c.get("type"), c.get("status")) == HELD_BY_WINDOW for c in conds):
        return True
    notes = (status.get("escalation") or {}).get("notifications") or ()
    return any(not isinstance(n, cabc.Mapping) or n.get("result") in HELD_BACK for n in notes)


def named_times(esc: cabc.Mapping[str, Any]) -> list[dt.datetime | None]:
    """The next step and reminder the escalation names (None for one that does not parse)."""
    return [timestamps.parse(esc.get(f)) for f in ("nextStepAt", "nextReminderAt") if esc.get(f)]
