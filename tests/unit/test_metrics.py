"""The incident board behind /metrics: the open gauge from what is seen, MTTA/MTTR observed once."""

import datetime as dt

from oncall_operator.adapters import metrics
from oncall_operator.api import incident

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
