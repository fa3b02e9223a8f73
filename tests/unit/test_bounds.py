"""A week-long Incident stays writable: compaction and the byte budget (``domain/bounds.py``), in virtual time.

The big one drives the real engine and lifecycle for 7 simulated days of an acknowledged,
never resolved critical Incident on the handbook's policy. The loop looks when the engine
says (``wake_at``), as the operator does; each status goes through the byte budget and is
validated by the real status models (the CRD's maxItems and maxLength are the models'), as
every write would be. One channel always fails, so the timeline grows too.
"""

import datetime as dt
import json

import pydantic
import pydantic_core
import pytest

from oncall_operator.api import incident
from oncall_operator.domain import bounds, delivery, escalation, lifecycle
from tests.unit.test_escalation import POLICY, T0, resolver

ME = delivery.Claimant("sim/1/1")
WEEK = dt.timedelta(days=7)


SIZES: list[int] = []


def write(inc: incident.Incident, status: incident.IncidentStatus) -> incident.Incident:
    """What the API server keeps of a status write: fitted, serialized, validated."""
    wire = bounds.fit(status).wire()
    SIZES.append(len(json.dumps(wire, separators=(",", ":")).encode()))
    assert SIZES[-1] <= bounds.STATUS_BUDGET
    return inc.model_copy(update={"status": incident.IncidentStatus.model_validate(wire)})


@pytest.mark.timeout(900)  # about 30 s of CPU: a loaded machine stretches it
def test_seven_days_acknowledged_and_unresolved_every_write_succeeds_and_ack_resolve_work_at_the_end() -> None:
    spec = incident.IncidentSpec(title="API error rate above SLO", severity="critical", description="x" * 16000)
    inc = incident.Incident(metadata={"name": "i", "namespace": "ns"}, spec=spec, status=lifecycle.opened(spec, T0))
    now, writes, sends = T0, 0, 0
    acked = False
    while now < T0 + WEEK:
        assert inc.status is not None
        if not acked and now >= T0 + dt.timedelta(minutes=2):
            edited, _ = lifecycle.acknowledge(inc.status, "devops-lead", now)
            assert edited is not None
            inc, acked, writes = write(inc, edited), True, writes + 1
        decision = escalation.decide(POLICY, inc, now, resolver(), ME)
        if decision.status != inc.status:
            inc, writes = write(inc, decision.status), writes + 1
        assert inc.status is not None
        outs = [
            delivery.Outcome(s.key, c, c != "slack", "HTTP 500: down" if c == "slack" else "HTTP 202", False)
            for s in decision.sends
            for c in s.channels
        ]
        sends += len(outs)
        if outs:
            status = incident.IncidentStatus.model_validate(inc.status.model_dump())
            for n in delivery.record(status.escalation.notifications, outs, now, ME, dt.timedelta(minutes=5)):
                lifecycle.add(status, now, "NotificationFailed", n.message)
            inc, writes = write(inc, status), writes + 1
        wake = decision.wake_at or now + dt.timedelta(minutes=15)
        now = max(wake, now + dt.timedelta(seconds=30))
    status = inc.status
    assert status is not None
    assert len(status.escalation.notifications) <= 500 and len(status.timeline) <= 1000
    assert (
        sends >= WEEK / dt.timedelta(minutes=15) * 3 - 6
    )  # three channels every fifteen minutes, for a week (from minute 30)
    updates = [n for n in status.escalation.notifications if n.kind == "status-update"]
    assert updates[-1].key.startswith("status-update/L3/loop0/")
    assert any(e.type == bounds.COMPACTED and "StatusUpdate" in e.message for e in status.timeline)
    summary = next(n for n in status.escalation.notifications if n.result == bounds.COMPACTED)
    assert "status-update-Delivered" in summary.message
    # the first page and the acknowledgement are still there: how it started
    assert status.escalation.notifications[0].key.startswith("page/L1/loop0@")
    assert status.timeline[0].type == "Triggered"
    # kubectl oncall ack / resolve at the end
    again, said = lifecycle.acknowledge(status, "cto", now)
    assert again is None and "already acknowledged" in said
    resolved, said = lifecycle.resolve(status, "cto", now, "fixed after a week")
    assert resolved is not None and said == "resolved by cto"
    inc = write(inc, resolved)
    decision = escalation.decide(POLICY, inc, now, resolver(), ME)
    assert {c for s in decision.sends for c in s.channels} == {"pagerduty", "email"}  # slack never took one
    inc = write(inc, decision.status)
    print(f"7 days: {writes} writes, {sends} sends, largest status {max(SIZES)} bytes")


def test_compaction_keeps_the_first_and_the_latest_and_counts_the_middle_across_rounds() -> None:
    entries = [
        incident.TimelineEntry(at=T0 + dt.timedelta(minutes=i), type="StatusUpdate", message=str(i))
        for i in range(2000)
    ]
    status = incident.IncidentStatus(phase=incident.Phase.ACKNOWLEDGED)
    for e in entries:
        lifecycle.add(status, e.at, e.type, e.message)
    assert len(status.timeline) <= bounds.TIMELINE_LIMIT
    assert [e.message for e in status.timeline[: bounds.HEAD]] == [str(i) for i in range(bounds.HEAD)]
    assert status.timeline[-1].message == "1999"
    summaries = [e for e in status.timeline if e.type == bounds.COMPACTED]
    assert len(summaries) == 1
    kept = sum(1 for e in status.timeline if e.type == "StatusUpdate")
    assert summaries[0].message.startswith(f"… {2000 - kept} StatusUpdate entries from ")


def test_pending_and_current_steps_are_never_compacted() -> None:
    epoch = f"@{int(T0.timestamp())}"
    notes = [
        incident.Notification(key=f"page/L1/loop0{epoch}", at=T0, level=1, channel="pd", result="Delivered"),
        *[
            incident.Notification(
                key=f"status-update/L3/loop0/{i}{epoch}",
                at=T0,
                level=3,
                channel="pd",
                kind="status-update",
                result="Delivered",
            )
            for i in range(600)
        ],
        incident.Notification(key=f"status-update/L3/loop0/601{epoch}", at=T0, level=3, channel="x", result="Pending"),
    ]
    status = incident.IncidentStatus(phase=incident.Phase.ACKNOWLEDGED, escalation=incident.Escalation(started_at=T0))
    kept = bounds.compact_notifications(notes, bounds.engine_needs(status))
    assert len(kept) <= bounds.NOTIFICATIONS_TARGET
    assert kept[0].key == f"page/L1/loop0{epoch}" and kept[-1].result == "Pending"


def test_the_byte_budget_shrinks_a_status_of_maximal_entries() -> None:
    big = "y" * 4096
    status = incident.IncidentStatus(
        phase=incident.Phase.TRIGGERED,
        timeline=[incident.TimelineEntry(at=T0, type="Note", message=big) for _ in range(1000)],
        actions=[
            incident.ActionRecord(at=T0, action="a", state=incident.ActionState.APPLIED, patch="p" * 8192, reason=big)
            for _ in range(200)
        ],
    )
    assert bounds.size(status) > 6 * 1024 * 1024
    fitted = bounds.fit(status)
    assert bounds.size(fitted) <= bounds.STATUS_BUDGET
    assert len(fitted.actions) == 200 and fitted.actions[-1].patch == "p" * 8192  # the latest facts kept whole
    incident.IncidentStatus.model_validate(fitted.wire())


def test_the_models_refuse_what_the_crd_refuses() -> None:
    with pytest.raises(pydantic.ValidationError):
        incident.Escalation(
            notifications=[incident.Notification(key="k", at=T0, level=1, channel="c", result="Delivered")] * 501
        )


def test_fitted_wire_is_the_fitted_status_on_the_wire() -> None:
    small = incident.IncidentStatus(phase=incident.Phase.TRIGGERED)
    assert bounds.fitted_wire(small) == (small, small.wire())
    assert bounds.fitted_wire(small)[0] is small  # nothing cut: the very status, not a copy
    big = incident.IncidentStatus(
        phase=incident.Phase.TRIGGERED,
        timeline=[incident.TimelineEntry(at=T0, type="Note", message="x" * 4000) for _ in range(400)],
    )
    assert bounds.size(big) > bounds.STATUS_BUDGET
    assert bounds.fitted_wire(big) == (bounds.fit(big), bounds.fit(big).wire())


def test_fitted_wire_counts_escaped_characters_as_size_does() -> None:
    """Under the budget as UTF-8 but over it as :func:`bounds.size` counts (each "é" six bytes): fitted."""
    wide = incident.IncidentStatus(
        phase=incident.Phase.TRIGGERED,
        timeline=[incident.TimelineEntry(at=T0, type="Note", message="é" * 1000) for _ in range(200)],
    )
    assert len(pydantic_core.to_json(wide.wire())) < bounds.STATUS_BUDGET < bounds.size(wide)
    assert bounds.fitted_wire(wide)[1] == bounds.fit(wide).wire() != wide.wire()
