"""Every edit of an Incident's lifecycle, in one place: open, timeline, NeedsHuman, ack, resolve, approve, check.

Pure: the caller passes ``now`` and who acts. The plugin, the OOM and alert planners and the
escalation engine all write the timeline and the ``NeedsHuman`` condition through here, so
the bounds and the wording are the same whoever writes. An edit returns the new status (or
None when there is nothing to write) and a sentence for the person who asked.
"""

import datetime as dt

from oncall_operator.api import base, incident
from oncall_operator.domain import bounds, conditions


def target_text(target: incident.Target) -> str:
    """``Kind/namespace/name`` (or what there is of it) for the TARGET column."""
    parts = [p for p in (target.kind, target.namespace, target.name) if p]
    text = "/".join(parts)
    return f"{text}[{target.container}]" if target.container and text else text


def opened(spec: incident.IncidentSpec, now: dt.datetime) -> incident.IncidentStatus:
    """The status of a new Incident: Triggered, seen once, with the first timeline entry."""
    return incident.IncidentStatus(
        phase=incident.Phase.TRIGGERED,
        target=target_text(spec.target),
        occurrences=1,
        first_seen=now,
        last_seen=now,
        timeline=[
            incident.TimelineEntry(
                at=now,
                type="Triggered",
                message=f"{spec.severity.value} incident opened from {spec.source.type.value}: {spec.title}",
            )
        ],
    )


def with_ready(
    status: incident.IncidentStatus, verdict: conditions.Verdict, generation: int, now: dt.datetime
) -> incident.IncidentStatus:
    """``status`` with the Ready condition of ``verdict`` for ``generation``.

    The operator's own writers (the OOM watch, the intake) put it into the status write they
    make anyway, so the Incident's handler finds Ready already said and writes nothing more.
    The copy is shallow (a deep one was 1 % of a storm's CPU, issue 18): it shares the rest of
    ``status``, which its callers write and never edit after.
    """
    ready = conditions.ready(list(status.conditions), verdict, generation, now)
    return status.model_copy(update={"conditions": ready, "observed_generation": generation})


def first_ready(
    status: incident.IncidentStatus | None,
    verdict: conditions.Verdict | None,
    generation: int,
    now: dt.datetime,
) -> incident.IncidentStatus | None:
    """A creator's status write with Ready added when it has none yet and a verdict is known."""
    if status is None or verdict is None or any(c.type == conditions.READY for c in status.conditions):
        return status
    return with_ready(status, verdict, generation, now)


MESSAGE_MAX = 4096
TIMELINE_MAX = 1000
"""The schema's bound on the timeline (api/incident.py)."""
NEEDS_HUMAN = "NeedsHuman"


def add(
    status: incident.IncidentStatus, now: dt.datetime, type_: str, message: str, actor: str = ""
) -> incident.IncidentStatus:
    """``status`` with one more timeline entry (in place), the timeline compacted within its bound (:mod:`.bounds`).

    A person's own entry (``actor`` set: ack, resolve, approve, check) only appends: the admission
    policy lets a person add entries, never rewrite earlier ones, and the operator's compaction
    (at 900 entries, to 700) leaves room below the schema's 1,000 for them. Should a hundred
    people's entries come between two of the operator's writes, the next is left out (what they
    did is in its own fields: ``acknowledgedBy``, ``approvals``...), never compacted.
    """
    entry = incident.TimelineEntry(at=now, type=type_, message=message[:MESSAGE_MAX], actor=actor)
    if actor:
        if len(status.timeline) < TIMELINE_MAX:
            status.timeline = [*status.timeline, entry]
        return status
    status.timeline = bounds.compact_timeline([*status.timeline, entry])
    return status


def needs_human(status: incident.IncidentStatus, value: bool, reason: str, message: str, now: dt.datetime) -> None:
    """Set the ``NeedsHuman`` condition (in place); a flip to True is also a timeline entry.

    Written whenever the automation decides (False with reason ``Mitigated`` after an applied
    action), so ``kubectl get`` shows the automation's last word, not only its alarms.
    """
    flag = base.ConditionStatus.TRUE if value else base.ConditionStatus.FALSE
    was = next((c.status for c in status.conditions if c.type == NEEDS_HUMAN), None)
    status.conditions = conditions.put(status.conditions, NEEDS_HUMAN, flag, reason, message[:MESSAGE_MAX], None, now)
    if value and was != flag:
        add(status, now, NEEDS_HUMAN, f"{reason}: {message}")


def new_round(status: incident.IncidentStatus, now: dt.datetime, why: str) -> None:
    """Reopen a Resolved Incident as a new round (in place): nobody has acknowledged it, and the
    escalation starts again from level 1 at ``now`` (its steps are keyed by the start, so every
    level, reminder and status update is due again from ``now``, not from the first opening)."""
    status.phase, status.resolved_at, status.resolved_by, status.resolved_via = incident.Phase.REOPENED, None, "", ""
    restart_escalation(status, now)
    add(status, now, "Reopened", why)


def restart_escalation(status: incident.IncidentStatus, now: dt.datetime) -> None:
    """Unacknowledged, escalation clock at ``now``, level and loop 0 (in place)."""
    status.acknowledged_at, status.acknowledged_by, status.acknowledged_via = None, "", ""
    esc = status.escalation
    esc.started_at, esc.level, esc.loop, esc.closed = now, 0, 0, False
    esc.next_step_at = esc.next_reminder_at = None


def human_needed(status: incident.IncidentStatus) -> bool:
    return any(c.type == NEEDS_HUMAN and c.status == base.ConditionStatus.TRUE for c in status.conditions)


def page_human(status: incident.IncidentStatus, reason: str, message: str, now: dt.datetime) -> None:
    """``NeedsHuman=True`` and, when it was not already, a page (in place).

    A Mitigated Incident counts as handled for the escalation, so it goes back to Triggered; the
    escalation clock restarts at ``now`` so the page starts at level 1 instead of firing every
    level that came due since the Incident opened. An Incident a person acknowledged stays theirs.
    The escalation pages (never only notifies) while ``NeedsHuman`` is True, whatever the severity.
    """
    flipped = not human_needed(status)
    needs_human(status, True, reason, message, now)
    if not flipped or status.phase in (incident.Phase.ACKNOWLEDGED, incident.Phase.RESOLVED):
        return
    if status.phase == incident.Phase.MITIGATED:
        status.phase = incident.Phase.TRIGGERED
    restart_escalation(status, now)


Edit = tuple[incident.IncidentStatus | None, str]
"""A lifecycle edit's result: the new status (None: nothing to write) and what to tell the person."""


def acknowledge(status: incident.IncidentStatus, by: str, now: dt.datetime, how: str = "", via: str = "") -> Edit:
    """``by`` acknowledges: the escalation stops paging (a Resolved Incident cannot be).

    ``via`` says how when it was not kubectl (``link``, ``slack``...): only the operator writes it.
    """
    return _transition(status, incident.Phase.ACKNOWLEDGED, by, now, how, via)


def resolve(status: incident.IncidentStatus, by: str, now: dt.datetime, note: str = "", via: str = "") -> Edit:
    """``by`` resolves: reminders stop, everybody who was paged is told."""
    return _transition(status, incident.Phase.RESOLVED, by, now, note, via)


def _transition(
    status: incident.IncidentStatus, to: incident.Phase, by: str, now: dt.datetime, note: str, via: str = ""
) -> Edit:
    if status.phase == incident.Phase.RESOLVED:
        raise ValueError(f"is already resolved (by {status.resolved_by or 'the operator'})")
    if to == incident.Phase.ACKNOWLEDGED and status.phase == incident.Phase.ACKNOWLEDGED:
        return None, f"was already acknowledged by {status.acknowledged_by}"
    st = status.model_copy(deep=True)
    st.phase = to
    if to == incident.Phase.ACKNOWLEDGED:
        st.acknowledged_by, st.acknowledged_at, st.acknowledged_via = by, now, via
    else:
        st.resolved_by, st.resolved_at, st.resolved_via = by, now, via
    how = f" via {via}" if via else ""
    add(st, now, to.value, f"{to.value} by {by}{how}" + (f": {note}" if note else ""), actor=by)
    return st, f"{to.value.lower()} by {by}{how}"


def approve(status: incident.IncidentStatus, action: str, by: str, now: dt.datetime) -> Edit:
    """The status with ``by``'s approval of ``action`` for its waiting round, and what to tell them."""
    waiting = [r for r in status.actions if r.action == action and r.state == incident.ActionState.AWAITING_APPROVAL]
    if not waiting:
        names = sorted({r.action for r in status.actions if r.state == incident.ActionState.AWAITING_APPROVAL})
        also = f" (awaiting: {', '.join(names)})" if names else ""
        raise ValueError(f"action {action} is not awaiting approval{also}")
    rnd = waiting[-1].occurrence
    given = next((a for a in status.approvals if a.action == action and a.round == rnd), None)
    if given is not None:
        return None, f"action {action} was already approved by {given.by}"
    st = status.model_copy(deep=True)
    st.approvals = [*st.approvals, incident.Approval(action=action, round=rnd, by=by, at=now)][-100:]
    add(st, now, "Approved", f"action {action} approved by {by}", actor=by)
    return st, f"action {action} approved by {by}: the operator runs it inside the guardrails"


def check(status: incident.IncidentStatus, number: int, by: str, now: dt.datetime) -> Edit:
    """The status with checklist item ``number`` (1-based) ticked by ``by``."""
    if not 1 <= number <= len(status.checklist):
        raise ValueError(f"the checklist has {len(status.checklist)} item(s); there is no item {number}")
    item = status.checklist[number - 1]
    if item.done:
        return None, f"item {number} ({item.title}) was already checked by {item.by or 'somebody'}"
    st = status.model_copy(deep=True)
    st.checklist[number - 1] = item.model_copy(update={"done": True, "by": by, "at": now})
    add(st, now, "ChecklistChecked", f"{number}. {item.title}", actor=by)
    return st, f"item {number} ({item.title}) checked by {by}"
