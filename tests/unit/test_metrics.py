"""The incident board behind /metrics: the open gauge from what is seen, MTTA/MTTR observed once; how late it runs."""

import asyncio
import datetime as dt
import time

from oncall_operator.adapters import looplag, metrics, tasks
from oncall_operator.api import incident
from oncall_operator.domain import escalation

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
Phase = incident.Phase


def inc(severity: str, phase: Phase | None, **status: object) -> dict[str, object]:
    spec = incident.IncidentSpec(title="t", severity=severity)
    st = incident.IncidentStatus(phase=phase, first_seen=T0, **status) if phase else None
    return incident.Incident(spec=spec, status=st).model_dump(by_alias=True, mode="json", exclude_none=True)


def gauge(board: metrics.IncidentGauges) -> dict[tuple[str, str], float]:
    [family] = board.collect()
    return {(s.labels["severity"], s.labels["phase"]): s.value for s in family.samples if s.value}


def observed(name: str, severity: str) -> float:
    return metrics.REGISTRY.get_sample_value(f"{name}_count", {"severity": severity}) or 0.0


def test_the_gauge_counts_what_is_open_now() -> None:
    """Read from the raw body on every event: a malformed one counts nowhere and raises nothing."""
    board = metrics.IncidentGauges(T0)
    board.see("a", inc("critical", Phase.TRIGGERED))
    board.see("b", inc("critical", Phase.TRIGGERED))
    board.see("c", inc("warning", Phase.ACKNOWLEDGED))
    board.see("d", inc("info", Phase.RESOLVED))
    board.see("e", inc("info", None))
    board.see("f", {"spec": {"severity": "loud"}, "status": {"phase": "Triggered"}})
    board.see("g", {"spec": {"severity": "info"}, "status": {"phase": "Triggered", "acknowledgedAt": "not a time"}})
    board.forget("g")
    assert gauge(board) == {("critical", "Triggered"): 2, ("warning", "Acknowledged"): 1}
    board.see("a", inc("critical", Phase.RESOLVED))
    board.forget("c")
    assert gauge(board) == {("critical", "Triggered"): 1}
    [family] = board.collect()
    assert len(family.samples) == 3 * 4  # every severity x open phase, zeros included: stable series


def test_mtta_and_mttr_are_observed_once_and_never_for_what_happened_before_the_start() -> None:
    board = metrics.IncidentGauges(T0 + dt.timedelta(minutes=10))
    ack, res = "oncall_incident_time_to_acknowledge_seconds", "oncall_incident_time_to_resolve_seconds"
    before = observed(ack, "info"), observed(res, "info")
    old = inc("info", Phase.RESOLVED, acknowledged_at=T0, resolved_at=T0 + dt.timedelta(minutes=5))
    board.see("old", old)  # re-listed after a restart: its predecessor observed these
    assert (observed(ack, "info"), observed(res, "info")) == before
    fresh = inc("info", Phase.ACKNOWLEDGED, acknowledged_at=T0 + dt.timedelta(minutes=12))
    board.see("new", fresh)
    board.see("new", fresh)
    assert observed(ack, "info") == before[0] + 1
    done = inc(
        "info", Phase.RESOLVED, acknowledged_at=T0 + dt.timedelta(minutes=12), resolved_at=T0 + dt.timedelta(minutes=20)
    )
    board.see("new", done)
    board.see("new", done)
    assert (observed(ack, "info"), observed(res, "info")) == (before[0] + 1, before[1] + 1)


def lateness(level: str) -> tuple[float, float]:
    name = "oncall_escalation_page_lateness_seconds"
    get = metrics.REGISTRY.get_sample_value
    return get(f"{name}_count", {"level": level}) or 0.0, get(f"{name}_sum", {"level": level}) or 0.0


def send(kind: str, level: int, method: str = "") -> escalation.Send:
    return escalation.Send(f"{kind}/L{level}/loop0", kind, level, 0, ("slack",), (), "t", method)


def test_page_lateness_is_observed_once_per_paged_level_against_its_due_time() -> None:
    """A level paged to two people counts once; a reminder or a person's own rule step is no level's page;
    a step not due yet (a retry's send) or with no due time (the intake's level 1) is not observed."""
    before = lateness("7"), lateness("8")
    done = T0 + dt.timedelta(seconds=90)
    metrics.record_lateness([send("page", 7), send("page", 7), send("remind", 8)], T0 + dt.timedelta(seconds=60), done)
    metrics.record_lateness([send("page", 8, method="SMS")], T0, done)
    metrics.record_lateness([send("page", 8)], None, done)
    metrics.record_lateness([send("page", 8)], done + dt.timedelta(seconds=1), done)
    assert lateness("7") == (before[0][0] + 1, before[0][1] + 30.0)
    assert lateness("8") == before[1]


def test_the_event_loop_lag_probe_sees_a_blocked_loop() -> None:
    """A handler that holds the loop for 0.3 s shows as a probe at least 0.25 s late."""
    name = "oncall_event_loop_lag_seconds"

    def over(bound: str) -> float:
        total = metrics.REGISTRY.get_sample_value(f"{name}_count") or 0.0
        return total - (metrics.REGISTRY.get_sample_value(f"{name}_bucket", {"le": bound}) or 0.0)

    before = over("0.25")

    async def main() -> None:
        probe = asyncio.create_task(looplag.watch(every=0.01))
        await asyncio.sleep(0)  # the probe's first sleep starts
        time.sleep(0.3)  # the stimulus: a handler holding the loop, not a wait
        while over("0.25") == before and not probe.done():
            await asyncio.sleep(0.01)
        await tasks.cancel(probe)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert over("0.25") >= before + 1
