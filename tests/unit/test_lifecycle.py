"""A creator's opening status write carries Ready, once, and never over a Ready already said."""

import datetime as dt

import pytest

from oncall_operator.api import base, incident
from oncall_operator.domain import bounds, conditions, lifecycle

NOW = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)
OK = conditions.Verdict(True, "Resolved", "references resolved")
MISSING = conditions.Verdict(False, "RunbookNotFound", "spec.runbookRef.name: Runbook 'x' not found")
SPEC = incident.IncidentSpec.model_validate({"title": "t", "severity": "warning"})


def opened(*types: str) -> incident.IncidentStatus:
    status = lifecycle.opened(SPEC, NOW)
    for t in types:
        status.conditions = conditions.put(status.conditions, t, base.ConditionStatus.TRUE, "R", "m", None, NOW)
    return status


@pytest.mark.parametrize(
    ("status", "verdict", "ready", "others"),
    [
        (opened(), OK, "True", []),
        (opened(), MISSING, "False", []),
        (opened("NeedsHuman"), OK, "True", ["NeedsHuman"]),  # another condition does not stand in for Ready
        (opened(), None, None, []),  # indices not filled: the Incident's handler says it later
        (opened("Ready"), MISSING, "True", []),  # already said: the handler's to change, not the creator's
    ],
)
def test_first_ready(
    status: incident.IncidentStatus, verdict: conditions.Verdict | None, ready: str | None, others: list[str]
) -> None:
    out = lifecycle.first_ready(status, verdict, 3, NOW)
    assert out is not None
    found = {c.type: c for c in out.conditions}
    assert (found["Ready"].status.value if "Ready" in found else None) == ready
    assert sorted(t for t in found if t != "Ready") == others
    if verdict is not None and "Ready" not in {c.type for c in status.conditions}:
        assert out.observed_generation == 3 and found["Ready"].observed_generation == 3


def test_nothing_to_write_stays_nothing() -> None:
    assert lifecycle.first_ready(None, OK, 1, NOW) is None


def test_a_persons_entry_only_appends_so_the_admission_policy_sees_the_old_timeline_as_a_prefix() -> None:
    """At the operator's compaction threshold an ack appends (room is left below the schema's 1,000);
    the operator's own next entry compacts."""
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    st = incident.IncidentStatus(phase=incident.Phase.TRIGGERED)
    st.timeline = [
        incident.TimelineEntry(at=now, type="StatusUpdate", message=str(i)) for i in range(bounds.TIMELINE_LIMIT)
    ]
    acked, _ = lifecycle.acknowledge(st, "ann", now)
    assert acked is not None and acked.timeline[: bounds.TIMELINE_LIMIT] == st.timeline
    assert len(acked.timeline) == bounds.TIMELINE_LIMIT + 1 and acked.timeline[-1].actor == "ann"
    lifecycle.add(acked, now, "StatusUpdate", "the operator's")
    assert len(acked.timeline) <= bounds.TIMELINE_TARGET + 1


def test_a_persons_entry_at_the_schemas_bound_is_left_out_never_compacted() -> None:
    """A hundred people's entries between two of the operator's writes: the next leaves the timeline as it was."""
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    st = incident.IncidentStatus(phase=incident.Phase.TRIGGERED)
    st.timeline = [
        incident.TimelineEntry(at=now, type="Acknowledged", message=str(i), actor="ann")
        for i in range(lifecycle.TIMELINE_MAX)
    ]
    before = list(st.timeline)
    lifecycle.add(st, now, "ChecklistTicked", "one more", actor="bob")
    assert st.timeline == before  # a prefix of itself: what the admission policy accepts
    lifecycle.add(st, now, "StatusUpdate", "the operator's")
    assert len(st.timeline) <= bounds.TIMELINE_TARGET + 1
