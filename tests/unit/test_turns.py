"""Turns at the API server: bounded requests in flight, the escalation's and the remediation's before the intake's."""

import asyncio

import pytest

from oncall_operator.adapters import turns


async def request(t: turns.Turns, name: str, order: list[str], release: asyncio.Event, urgent: bool = False) -> None:
    async def inside() -> None:
        async with t.take():
            order.append(name)
            await release.wait()

    if urgent:
        with turns.urgent():
            await inside()
    else:
        await inside()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_below_the_bound_a_request_never_waits_and_the_turns_come_back() -> None:
    t, order, release = turns.Turns(2), [], asyncio.Event()
    tasks = [asyncio.create_task(request(t, n, order, release)) for n in ("a", "b")]
    await settle()
    assert order == ["a", "b"] and t.busy == 2
    release.set()
    await asyncio.gather(*tasks)
    assert t.busy == 0 and t.waiters() == 0


async def test_a_freed_turn_goes_to_an_urgent_request_before_others_that_waited_longer() -> None:
    t, order = turns.Turns(1), []
    first, rest = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(request(t, "holder", order, first))
    await settle()
    intake = [asyncio.create_task(request(t, f"alert-{i}", order, rest)) for i in range(3)]
    await settle()
    page = asyncio.create_task(request(t, "page", order, rest, urgent=True))
    await settle()
    assert order == ["holder"] and t.waiters() == 4
    first.set()
    rest.set()
    await asyncio.gather(holder, *intake, page)
    assert order == ["holder", "page", "alert-0", "alert-1", "alert-2"]
    assert t.busy == 0


@pytest.mark.parametrize("handed_first", [False, True])
async def test_a_waiter_cancelled_never_keeps_or_loses_a_turn(handed_first: bool) -> None:
    t, order = turns.Turns(1), []
    first, rest = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(request(t, "holder", order, first))
    await settle()
    gone = asyncio.create_task(request(t, "gone", order, rest))
    after = asyncio.create_task(request(t, "after", order, rest))
    await settle()
    if handed_first:  # the turn is handed to it, and it is cancelled before it runs
        first.set()
        await asyncio.sleep(0)  # the holder ends and hands its turn to the first waiter
        assert t.waiters() == 1 and order == ["holder"]
    gone.cancel()
    first.set()
    rest.set()
    await asyncio.wait_for(asyncio.gather(holder, after), 10)  # a lost turn would leave "after" waiting
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert "after" in order and "gone" not in order
    assert t.busy == 0 and t.waiters() == 0


async def test_urgency_belongs_to_the_task_that_asked_for_it() -> None:
    seen: list[bool] = []

    async def child() -> None:
        seen.append(turns.URGENT.get())

    with turns.urgent():
        await asyncio.create_task(child())  # a task started inside inherits it
    await asyncio.create_task(child())
    assert seen == [True, False] and not turns.URGENT.get()
