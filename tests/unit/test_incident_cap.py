"""The cap of open Incidents per namespace (``domain/incident_cap.py``): what counts, and when it refuses."""

import pytest

from oncall_operator.domain import incident_cap


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ({}, False),  # not opened yet (a person's, held by the cap, or its creator's write on the way)
        ({"phase": "Triggered"}, True),
        ({"phase": "Acknowledged"}, True),
        ({"phase": "Mitigated"}, True),
        ({"phase": "Resolved"}, False),
        ({"phase": "Resolved", "escalation": {"closed": False}}, False),  # resolved: no longer open, told or not
    ],
)
def test_what_counts_as_open(status: dict[str, object], counted: bool) -> None:
    assert incident_cap.counts_as_open(status) is counted


def test_the_count_follows_each_incident_once_per_namespace() -> None:
    count = incident_cap.OpenCount()
    for _ in range(3):  # the intake's create and the watch's events of one Incident: counted once
        count.see("a", "i1", True)
    count.see("a", "i2", True)
    count.see("b", "i1", True)  # the same name in another namespace is another Incident
    assert (count.count("a"), count.count("b"), count.count("c")) == (2, 1, 0)
    count.see("a", "i1", False)  # resolved or deleted
    count.see("a", "i1", False)
    count.see("a", "never-seen", False)
    assert (count.count("a"), count.count("b")) == (1, 1)


@pytest.mark.parametrize(
    ("count", "cap", "refused"),
    [(0, 2, False), (1, 2, False), (2, 2, True), (5, 2, True), (10_000, 0, False)],  # 0: no cap
)
def test_the_cap_refuses_at_the_cap(count: int, cap: int, refused: bool) -> None:
    why = incident_cap.refusal(count, cap, "shop")
    assert (why is not None) is refused
    if why:
        assert "namespace shop" in why and f"cap of {cap} open Incidents" in why
        assert "ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE" in why
