"""The page that is due for one open Incident: ask the pure engine, claim it on the Incident, send it, record it.

:mod:`.open_incidents` calls :func:`escalate` on every change of an Incident
and again when its next step is due. When something is due it first records the step as
Pending on the Incident (a write guarded by resourceVersion, so of two operators only one wins
the step), then sends, then records Delivered or Failed. Everything needed to resume is in the
Incident, so a restarted or newly elected operator continues where the last one stopped.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
import logging
from typing import Any

from oncall_operator.adapters import incidents, metrics
from oncall_operator.api import incident
from oncall_operator.domain import delivery, escalation, maintenance
from oncall_operator.executor import claiming, context, delivering, muting, page_budget

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Looked:
    """What one look at an Incident left: the Incident as last written (None: no write), and when to look again."""

    raw: dict[str, Any] | None
    wake_at: dt.datetime | None


async def escalate(
    ctx: context.Context,
    body: cabc.Mapping[str, Any],
    handed: cabc.Sequence[escalation.Send] = (),
    parsed: incident.Incident | None = None,
) -> Looked:
    """Send what is due for one Incident, claimed in its status first; no API call when nothing is.

    ``handed``: steps this process claimed already in ``body`` (the intake's opening write): sent,
    not claimed again, if the Incident still shows them Pending under this process's claim.
    ``parsed``: ``body`` as its writer knew it, not validated again.
    """
    inc = parsed if parsed is not None else incident.Incident.model_validate(dict(body))
    if inc.status is None or inc.status.phase is None:
        return Looked(None, None)
    c = claiming.claimer(ctx, inc)
    if c is None:
        return Looked(None, None)
    if handed and (mine := _still_claimed(inc.status, handed, c.me)):
        return await _send(ctx, c, body, inc, dict(body), inc, mine, inc.status.escalation.next_step_at, None)
    if page_budget.in_play(c.spec, inc.status):  # the budget's count must hold every Incident's pages
        await page_budget.ready(c.ledger, ctx.api, ctx.config.watch_namespaces, ctx.config.namespace)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = claiming.decide(c, inc.status, inc, body, now)
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    mute = await muting.pages_muted(ctx, inc, now)  # the target workload's labels too, when a window selects by them
    if mute is not None and any(s.kind in page_budget.MUTED_KINDS for s in first.sends):
        held = await incidents.update_status_async(  # pages wait for the window's end, said once on the Incident
            ctx.api,
            ns,
            name,
            lambda cur: cur.status and maintenance.hold(cur.status, mute, now),
            known=body,
            parsed=inc,
        )
        return Looked(held.raw if held and held.changed else None, mute.until)
    ended = mute is None and maintenance.in_maintenance(inc.status)
    marked = page_budget.marked(inc.status, first.status)  # held pages counted in a summary sent elsewhere
    stale = _stale_next_step(inc.status, now)
    if not first.sends and inc.status.escalation.started_at is not None and not (ended or marked or stale):
        return Looked(None, first.wake_at)  # nothing due: no API call at all
    claimed: list[escalation.Send] = []
    wake: list[dt.datetime | None] = [first.wake_at]

    def claim(current: incident.Incident) -> incident.IncidentStatus | None:
        if current.status is None or current.status.phase is None:
            return None
        before = current.status
        if mute is None:  # a window just ended: the escalation starts again from level 1
            current = current.model_copy(update={"status": maintenance.resume(before, now)})
        decision = claiming.decide(c, before, current, body, now, remember=True)
        claimed[:], wake[0] = decision.sends, decision.wake_at
        return decision.status if decision.status != before else None

    written = await incidents.update_status_async(ctx.api, ns, name, claim, known=body, parsed=inc)
    if written is None or not claimed:
        return Looked(written.raw if written and written.changed else None, wake[0])
    due = inc.status.escalation.next_step_at
    return await _send(ctx, c, body, inc, written.raw, written.incident, claimed, wake[0], due)


def _stale_next_step(status: incident.IncidentStatus, now: dt.datetime) -> bool:
    """The status names a next step already past, though nothing is due: the look writes the right one, once.

    A decision's ``nextStepAt`` is always in the future or None, so the write cannot repeat. Without
    it, such an Incident ranks "due now" in every listing and takeover, and costs a useless look at
    every one (issue 18: 6,005 of a 10k storm's Incidents, escalated before the last loop stopped
    naming a next loop).
    """
    due = status.escalation.next_step_at
    return due is not None and due <= now


def _still_claimed(
    status: incident.IncidentStatus, handed: cabc.Sequence[escalation.Send], me: delivery.Claimant
) -> list[escalation.Send]:
    """The handed steps the Incident still shows Pending under this process's claim (a later write may take them)."""
    notes = status.escalation.notifications
    pending = {n.key for n in notes if n.result == delivery.PENDING and n.claimed_by == me.identity}
    return [s for s in handed if s.key in pending]


async def _send(
    ctx: context.Context,
    c: claiming.Claimer,
    body: cabc.Mapping[str, Any],
    inc: incident.Incident,
    raw: dict[str, Any],
    claimed_on: incident.Incident,
    claimed: cabc.Sequence[escalation.Send],
    wake_at: dt.datetime | None,
    due: dt.datetime | None,
) -> Looked:
    """Send the claimed steps, record their outcomes; a failed step is also a Warning Event on the Incident.

    ``due``: when the claimed step was due (the Incident's nextStepAt before the claim; None for the
    steps the intake claimed), for how late its pages went out (``oncall_escalation_page_lateness_seconds``).

    A delivered page is no Event (issue 18: a write per page in a storm): the Incident's timeline and
    notifications record it, and ``kubectl oncall timeline`` shows it.
    """
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    log.info("Incident %s/%s: claimed %s", ns, name, ", ".join(f"{s.key} ({', '.join(s.channels)})" for s in claimed))
    results = await delivering.deliver(ctx, claimed, claimed_on, c.spec, c.namespace)
    metrics.record_escalation(claimed, results, c.spec)
    finished = dt.datetime.now(dt.UTC)
    metrics.record_lateness(claimed, due, finished)
    window = escalation.retry_window(c.spec, inc.spec.severity.value)
    done = finished.replace(microsecond=0)
    record, wrote = delivering.record(results, done, window), [claimed_on.status]

    def recording(current: incident.Incident) -> incident.IncidentStatus | None:
        status = record(current)
        wrote[0] = status or current.status  # its retries, read without validating the API's answer again
        return status

    recorded = await incidents.update_status_async(ctx.api, ns, name, recording, known=raw, parsed=claimed_on)
    for send in claimed:
        if any(r.key == send.key and not r.ok for r in results):
            ctx.events.emit(body, True, send.kind.title().replace("-", ""), send.text)
    last_raw = recorded.raw if recorded else raw
    retry = delivery.next_retry(wrote[0].escalation.notifications) if wrote[0] else None
    return Looked(last_raw, min((t for t in (wake_at, retry) if t is not None), default=None))
