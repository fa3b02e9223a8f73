"""Kopf's peering rule as the leadership metric applies it, priorities by seniority, and when a standby looks again."""

import asyncio
import datetime as dt

import pytest

from oncall_operator.adapters import peering as adapters_peering
from oncall_operator.domain import peering
from oncall_operator.executor import config
from oncall_operator.executor import peering as leadership

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


@pytest.mark.parametrize(
    ("peers", "priority", "expected_ago"),
    [
        ({}, 10, None),
        ({"me": rec(10)}, 10, None),  # alone: nothing keeps it paused
        ({"me": rec(20), "other": rec(10)}, 20, None),  # the other ranks lower
        ({"me": rec(10), "leader": rec(20, seen_ago=5)}, 10, 5),  # read again when the leader's record ends
        ({"me": rec(10), "leader": rec(20, seen_ago=15)}, 10, None),  # expired already: it leads now
        ({"me": rec(10), "a": rec(20, seen_ago=5), "b": rec(30, seen_ago=2)}, 10, 2),  # only the last of them
        ({"me": rec(20), "tie": rec(20, seen_ago=3)}, 20, 3),  # a tie at the top pauses both
        ({"me": rec(10), "leader": {"priority": 20}}, 10, None),  # a malformed record is dead
        ({"leader": rec(20, seen_ago=4)}, 10, 4),  # its own record not yet written
    ],
)
def test_a_standby_knows_when_the_peers_that_pause_it_expire(
    peers: dict[str, object], priority: int, expected_ago: float | None
) -> None:
    """``expected_ago``: how long ago the last blocking peer was seen; its record ends a lifetime (15 s) later."""
    expected = None if expected_ago is None else NOW - dt.timedelta(seconds=expected_ago) + dt.timedelta(seconds=15)
    assert peering.blocked_until(peers, NOW, priority) == expected


def test_the_observer_reads_again_just_after_the_leader_expires_and_polls_otherwise() -> None:
    observer = leadership.Observer(None, config.Config(peering="p"), priority=10)  # type: ignore[arg-type]
    assert observer.next_read(5.0, NOW) == 5.0  # nothing read yet
    observer.seen[None] = {"leader": rec(20, seen_ago=13)}  # ends in 2 s
    assert observer.next_read(5.0, NOW) == pytest.approx(2.0 + leadership.EXPIRY_MARGIN)
    observer.seen[None] = {"leader": rec(20, seen_ago=1)}  # ends in 14 s: the poll comes first
    assert observer.next_read(5.0, NOW) == 5.0
    observer.seen[None] = {"leader": rec(20, seen_ago=14.99)}
    assert observer.next_read(5.0, NOW) >= leadership.EXPIRY_MARGIN


async def test_a_change_of_who_acts_wakes_the_waiters_at_once() -> None:
    before = adapters_peering.acting()
    try:
        adapters_peering.set_acting(False)
        waiting = asyncio.ensure_future(adapters_peering.changed(3600))
        await asyncio.sleep(0)
        assert not waiting.done()
        adapters_peering.set_acting(False)  # no change: still waiting
        await asyncio.sleep(0)
        assert not waiting.done()
        adapters_peering.set_acting(True)
        await asyncio.wait_for(waiting, 10)
        await adapters_peering.changed(0.01)  # and a timeout just returns
    finally:
        adapters_peering.set_acting(before)
