"""Kopf's peering rule as the leadership metric applies it, and priorities by seniority."""

import datetime as dt

import pytest

from oncall_operator.domain import peering

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def rec(priority: int, seen_ago: float = 1.0, lifetime: int = 15) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": (NOW - dt.timedelta(seconds=seen_ago)).isoformat()}


def test_the_earlier_start_has_the_higher_priority_and_jitter_only_breaks_ties() -> None:
    first, second = 1_770_000_000_000, 1_770_000_000_001
    assert peering.seniority_priority(first, 0) > peering.seniority_priority(second, peering.JITTER - 1)
    assert peering.seniority_priority(first, 1) > peering.seniority_priority(first, 0)
    assert peering.seniority_priority(first, peering.JITTER - 1) < 2**53  # exact as a JSON number
    with pytest.raises(ValueError):
        peering.seniority_priority(first, peering.JITTER)


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        ({}, None),
        ({"a": rec(10)}, "a"),
        ({"a": rec(10), "b": rec(20)}, "b"),
        ({"a": rec(10), "b": rec(20, seen_ago=15)}, "a"),  # b's keep-alive expired exactly now
        ({"a": rec(10), "b": rec(20, seen_ago=14.9)}, "b"),
        ({"a": rec(20), "b": rec(20)}, None),  # Kopf pauses every replica on a tie at the top
        ({"a": rec(20), "b": rec(20), "c": rec(30)}, "c"),
        ({"a": rec(10), "b": {"priority": 99}}, "a"),  # a malformed record counts as dead
        ({"a": rec(10), "b": "garbage"}, "a"),
        ({"a": {"priority": 5, "lifetime": 60, "lastseen": "2026-03-01T11:59:30"}}, "a"),  # naive: UTC
    ],
)
def test_who_acts(peers: dict[str, object], expected: str | None) -> None:
    """Each replica with a record asks ``leads`` with its own priority; only ``expected`` is told yes."""
    for identity, record in peers.items():
        if isinstance(record, dict) and isinstance(record.get("priority"), int):
            assert peering.leads(peers, NOW, record["priority"]) == (identity == expected), identity


def test_leads_needs_its_own_live_record_at_the_unique_top() -> None:
    peers = {"a": rec(10), "b": rec(20)}
    assert peering.leads(peers, NOW, 20) and not peering.leads(peers, NOW, 10)
    assert not peering.leads(peers, NOW, 30)  # not (yet) in the peering: Kopf keeps it paused
    assert not peering.leads({"a": rec(20), "b": rec(20)}, NOW, 20)
    assert not peering.leads({}, NOW, 20)
