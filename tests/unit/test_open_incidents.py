"""The open Incidents in memory (issue 18): kept compact, and looked at when their step is due.

Each open Incident is kept as compact JSON without managedFields, a newer resourceVersion replacing
an older one and never the reverse. The escalation loop looks at an Incident when its step is due,
not up to a tick later.

The loop used to sleep ``ONCALL_TICK_SECONDS`` between turns, so a due page went out up to a tick
late (the storm bench measured p50 3.4 s at the chart's 5 s tick). It now sleeps until the soonest
``wake_at`` it holds, and a look that sets a sooner one wakes it early. Virtual time (looptime):
the clock the loop reads is the event loop's; the engine's answer is stubbed at the module
boundary :func:`escalation.escalate` (what is due when), nothing of Kubernetes is involved.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
from typing import Any

import pytest

from oncall_operator.adapters import peering
from oncall_operator.adapters.incidents import Written
from oncall_operator.domain import due_hints
from oncall_operator.executor import config, escalation, open_incidents, opening

EPOCH = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@dataclasses.dataclass
class Indices:
    generation: int = 0


@dataclasses.dataclass
class Ctx:
    config: config.Config
    indices: Indices


def body(name: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": "1"}, "status": {"phase": "Triggered"}}


def virtual_clock() -> tuple[cabc.Callable[[], float], cabc.Callable[[], dt.datetime]]:
    """Seconds since now on the event loop's (virtual) clock, and the loop's clock as the time of day."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    return (lambda: loop.time() - start), (lambda: EPOCH + dt.timedelta(seconds=loop.time() - start))


@pytest.fixture
def acting() -> Any:
    before = peering.acting()
    peering.set_acting(True)
    yield
    peering.set_acting(before)


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("tick", "due_in", "looked_by"),
    [
        (5.0, 7.3, 7.4),  # between two ticks: at its time, not at 10 s
        (5.0, 1.2, 1.3),  # sooner than the first tick
        (60.0, 30.0, 30.1),  # a long tick never delays a due step
        (5.0, 5.0, 5.1),  # on a tick
    ],
)
async def test_a_due_step_is_looked_at_when_due_not_at_the_next_tick(
    acting: Any, monkeypatch: pytest.MonkeyPatch, tick: float, due_in: float, looked_by: float
) -> None:
    elapsed, clock = virtual_clock()

    due = EPOCH + dt.timedelta(seconds=due_in)
    looks: list[float] = []

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        looks.append(elapsed())
        return escalation.Looked(None, None if clock() >= due else due)

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    ctx: Any = Ctx(config.Config(tick_seconds=tick, recheck_seconds=3600), Indices())
    incidents.start(ctx)
    try:
        await incidents.seen(ctx, body("a"))  # the look on arrival: nothing due yet, wake at ``due``
        await asyncio.sleep(due_in + 20)
    finally:
        await incidents.stop()
    assert looks[0] == 0
    [when] = [t for t in looks[1:] if t >= due_in]
    assert when <= looked_by, looks


@pytest.mark.looptime
async def test_a_look_that_sets_a_sooner_step_wakes_a_sleeping_loop(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    elapsed, clock = virtual_clock()

    wakes = {"far": EPOCH + dt.timedelta(seconds=50), "near": EPOCH + dt.timedelta(seconds=12.5)}
    looks: list[tuple[str, float]] = []

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        name = raw["metadata"]["name"]
        looks.append((name, elapsed()))
        return escalation.Looked(None, None if clock() >= wakes[name] else wakes[name])

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    ctx: Any = Ctx(config.Config(tick_seconds=30, recheck_seconds=3600), Indices())
    incidents.start(ctx)
    try:
        await incidents.seen(ctx, body("far"))
        await asyncio.sleep(10)  # the loop sleeps until its 30 s tick
        await incidents.seen(ctx, body("near"))  # due at 12.5 s: the loop must not wait for 30 s
        await asyncio.sleep(45)
    finally:
        await incidents.stop()
    near = [t for name, t in looks if name == "near" and t > 10]
    assert near and 12.5 <= near[0] <= 12.6, looks
    far = [t for name, t in looks if name == "far" and t > 0]
    assert far and 50 <= far[0] <= 50.1, looks


def test_an_open_incident_is_kept_as_compact_json_without_managed_fields_and_never_goes_back() -> None:
    incidents = open_incidents.OpenIncidents()
    first = body("a")
    first["metadata"]["managedFields"] = [{"manager": "oncall-operator", "fieldsV1": {"f:status": {}}}]
    first["metadata"]["labels"] = {"oncall.dev/trigger": "OOMKilled"}
    key = incidents.see(first)
    entry = incidents.entries[key]
    assert b"managedFields" not in entry.text and b", " not in entry.text
    entry.chill()
    assert len(entry.packed) < len(entry.text), "kept compressed"
    assert entry.body["metadata"]["labels"] == first["metadata"]["labels"] and entry.version == "1"
    newer = body("a") | {"status": {"phase": "Acknowledged"}}
    newer["metadata"]["resourceVersion"] = "7"
    incidents.see(newer)
    older = body("a") | {"status": {"phase": "Mitigated"}}
    older["metadata"]["resourceVersion"] = "5"
    incidents.see(older)  # a late event of an older version
    assert incidents.entries[key].body["status"] == {"phase": "Acknowledged"} and incidents.entries[key].version == "7"
    kept = incidents.entries[key].packed
    same = body("a") | {"status": {"phase": "Acknowledged"}}
    same["metadata"]["resourceVersion"] = "7"
    incidents.see(same)  # the watch's event of a write whose answer was kept: not stored again
    assert incidents.entries[key].packed is kept
    closed = body("a") | {"status": {"phase": "Resolved", "escalation": {"closed": True}}}
    closed["metadata"]["resourceVersion"] = "9"
    incidents.see(closed)
    assert key not in incidents.entries  # closed: nothing left to send, nothing kept


def test_only_the_last_stored_entries_stay_uncompressed_and_each_reads_the_same_either_way() -> None:
    incidents = open_incidents.OpenIncidents()
    bodies = {f"i{n}": body(f"i{n}") | {"spec": {"title": f"number {n}"}} for n in range(open_incidents.WARM + 10)}
    for one in bodies.values():
        incidents.see(one)
    warm = [key for key, entry in incidents.entries.items() if not entry.cold]
    assert len(warm) == open_incidents.WARM == len(incidents.warm)
    assert ("ns", "i0") not in warm and ("ns", f"i{open_incidents.WARM + 9}") in warm, "the oldest compressed first"
    assert all(incidents.entries[("ns", name)].body == one for name, one in bodies.items())
    again = body("i0") | {"spec": {"title": "stored again"}}
    again["metadata"]["resourceVersion"] = "2"
    incidents.see(again)  # stored again: warm again, the least recently stored of the others compressed
    assert not incidents.entries[("ns", "i0")].cold and incidents.entries[("ns", "i10")].cold
    assert incidents.entries[("ns", "i0")].body == again and len(incidents.warm) == open_incidents.WARM
    incidents.forget(("ns", "i0"))
    assert ("ns", "i0") not in incidents.warm


def with_version(name: str, version: str, phase: str = "Triggered") -> dict[str, Any]:
    found = body(name)
    found["metadata"]["resourceVersion"], found["status"]["phase"] = version, phase
    return found


@pytest.mark.parametrize(
    ("events", "looks"),
    [
        # the look claims (writes 3): the event of its own write, late, is not looked at again
        ([("2", "3"), ("3", None)], ["2"]),
        # the claim's event (3) after the outcome's write (4) was stored: older, judged already
        ([("2", "4"), ("3", None), ("4", None)], ["2"]),
        # somebody else wrote after the look (5): a look
        ([("2", "3"), ("5", None)], ["2", "5"]),
        # a look that wrote nothing judged what it read: the same version again is not looked at
        ([("2", None), ("2", None)], ["2"]),
    ],
)
async def test_an_event_bringing_back_what_the_last_look_judged_is_not_looked_at_again(
    monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str | None]], looks: list[str]
) -> None:
    seen: list[str] = []
    writes = iter([w for _, w in events])

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        seen.append(raw["metadata"]["resourceVersion"])
        wrote = next(writes)
        return escalation.Looked(with_version("a", wrote, "Acknowledged") if wrote else None, None)

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(lambda: EPOCH)
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), Indices())
    for version, _ in events:
        await incidents.seen(ctx, with_version("a", version))
    assert seen == looks


async def test_a_changed_index_or_a_due_step_is_looked_at_though_the_body_was_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        seen.append(raw["metadata"]["resourceVersion"])
        return escalation.Looked(None, EPOCH + dt.timedelta(seconds=30))

    monkeypatch.setattr(escalation, "escalate", escalate)
    now = [EPOCH]
    incidents = open_incidents.OpenIncidents(lambda: now[0])
    indices = Indices()
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), indices)
    await incidents.seen(ctx, with_version("a", "2"))
    await incidents.seen(ctx, with_version("a", "2"))
    indices.generation += 1  # a Policy or Schedule changed: the same body may now decide otherwise
    await incidents.seen(ctx, with_version("a", "2"))
    now[0] = EPOCH + dt.timedelta(seconds=31)  # its step is due
    await incidents.seen(ctx, with_version("a", "2"))
    assert seen == ["2", "2", "2"]


def listed(name: str, phase: str = "Triggered", next_in: float | None = 40.0, **esc: Any) -> dict[str, Any]:
    """An open Incident as a takeover's listing brings it: its escalation started, its next step named."""
    escalation_status: dict[str, Any] = {"startedAt": EPOCH.isoformat(), **esc}
    if next_in is not None:
        escalation_status["nextStepAt"] = (EPOCH + dt.timedelta(seconds=next_in)).isoformat()
    found = body(name)
    found["status"] = {"phase": phase, "escalation": escalation_status}
    return found


@pytest.mark.looptime
async def test_a_listing_after_a_takeover_looks_at_once_only_where_something_may_be_due(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: 10,000 open Incidents listed at a takeover; the due ones must not wait for the others' looks."""
    elapsed, clock = virtual_clock()

    looks: dict[str, list[float]] = {}

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        looks.setdefault(raw["metadata"]["name"], []).append(round(elapsed(), 1))
        return escalation.Looked(None, None)

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), Indices())
    incidents.start(ctx)
    pending = [{"key": "page/L1/loop0@x", "channel": "a", "result": "Pending", "at": EPOCH.isoformat()}]
    try:
        for item in (
            listed("waits"),  # level 2 at 40 s: looked at then, not now
            listed("claimed", notifications=pending),  # a claim the dead leader may not have sent
            listed("acked", phase="Acknowledged"),  # the acknowledgement may still be told
            listed("unnamed", next_in=None),  # the status names no next step
            listed("overdue", next_in=-3),
        ):
            await incidents.seen(ctx, item)
        await asyncio.sleep(60)
    finally:
        await incidents.stop()
    assert {name: times[0] for name, times in looks.items()} == {
        "claimed": 0,
        "acked": 0,
        "unnamed": 0,
        "overdue": 0,
        "waits": 40,
    }, looks


@pytest.mark.looptime
async def test_more_due_looks_than_the_loop_starts_at_once_go_soonest_first(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, clock = virtual_clock()

    order: list[str] = []

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        order.append(raw["metadata"]["name"])
        await asyncio.sleep(1)
        return escalation.Looked(None, None)

    monkeypatch.setattr(escalation, "escalate", escalate)
    monkeypatch.setattr(open_incidents, "BATCH", 1)
    incidents = open_incidents.OpenIncidents(clock)
    indices = Indices()
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), indices)
    for name, due_at in (("c", 30), ("a", 10), ("d", 40), ("b", 20)):
        key = incidents.see(body(name))
        incidents.entries[key].wake_at = EPOCH + dt.timedelta(seconds=due_at)
        incidents.entries[key].looked = indices.generation
    await asyncio.sleep(45)  # all four overdue at the loop's first turn
    incidents.start(ctx)
    try:
        await asyncio.sleep(20)
    finally:
        await incidents.stop()
    assert order[:4] == ["a", "b", "c", "d"], order


@pytest.mark.looptime
async def test_sends_hanging_on_a_black_holed_channel_do_not_hold_back_the_others_due_pages(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty Incidents whose channel swallows every request (each send hangs until its 30 s timeout) and one
    whose level 2 falls due a second after theirs: it is looked at on time. A gate of 16 looks held it
    back until the hanging ones gave up (issue 18); the loop's only bound is :data:`BATCH` in flight."""
    elapsed, clock = virtual_clock()
    looked: dict[str, float] = {}

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        name = raw["metadata"]["name"]
        looked[name] = elapsed()
        if name.startswith("hung"):
            await asyncio.sleep(30)
        return escalation.Looked(None, None)

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    indices = Indices()
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), indices)
    names = [f"hung-{i}" for i in range(40)] + ["other"]
    for name in names:
        key = incidents.see(body(name))
        incidents.entries[key].wake_at = EPOCH + dt.timedelta(seconds=11 if name == "other" else 10)
        incidents.entries[key].looked = indices.generation
    incidents.start(ctx)
    try:
        await asyncio.sleep(20)
    finally:
        await incidents.stop()
    assert set(looked) == set(names)
    assert 11 <= looked["other"] < 11.5, looked["other"]


@pytest.mark.looptime
async def test_a_catch_up_over_incidents_never_looked_at_runs_a_few_at_once(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a takeover every kept Incident is new to this replica: the loop looks at those :data:`SWEEP`
    at once (the ranked listing hands the due ones on meanwhile), and at a due step without waiting for them."""
    elapsed, clock = virtual_clock()
    running, most = [0], [0]
    looked: dict[str, float] = {}

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        looked[raw["metadata"]["name"]] = elapsed()
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(1)
        running[0] -= 1
        return escalation.Looked(None, None)

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    indices = Indices()
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), indices)
    for i in range(40):
        incidents.see(body(f"new-{i}"))  # never looked at: looked -1
    due = incidents.see(body("due"))
    incidents.entries[due].wake_at, incidents.entries[due].looked = EPOCH, indices.generation
    incidents.start(ctx)
    try:
        await asyncio.sleep(10)
    finally:
        await incidents.stop()
    assert len(looked) == 41
    assert most[0] == open_incidents.SWEEP + 1, most[0]  # the due one beside a full sweep
    assert looked["due"] == min(looked.values()), looked  # at the loop's first turn, not after the sweep


def test_a_late_event_of_an_unopened_version_does_not_drop_an_opened_incident() -> None:
    """The create's event may arrive after the intake's opening write (with its claim) was handed over."""
    incidents = open_incidents.OpenIncidents()
    opened = with_version("a", "8")
    key = incidents.see(opened)
    created = body("a")
    created["metadata"]["resourceVersion"], created["status"] = "7", {}
    incidents.see(created)
    assert incidents.entries[key].version == "8"


@pytest.mark.looptime
async def test_a_step_a_later_look_moved_is_looked_at_at_its_new_time_only(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's turns between two scans read the wakes each look left; a wake a later look moved is skipped."""
    elapsed, clock = virtual_clock()

    wake = {"at": EPOCH + dt.timedelta(seconds=10)}
    looks: list[tuple[str, float]] = []

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        looks.append((raw["metadata"]["name"], round(elapsed(), 1)))
        return escalation.Looked(None, None if clock() >= wake["at"] else wake["at"])

    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    ctx: Any = Ctx(config.Config(tick_seconds=60, recheck_seconds=3600), Indices())
    incidents.start(ctx)
    try:
        await incidents.seen(ctx, with_version("a", "1"))  # due at 10 s
        await asyncio.sleep(4)
        wake["at"] = EPOCH + dt.timedelta(seconds=25)
        await incidents.seen(ctx, with_version("a", "2"))  # a change: now due at 25 s, not at 10 s
        await asyncio.sleep(4)
        await incidents.seen(ctx, with_version("b", "1"))  # another Incident, due at 25 s too
        await asyncio.sleep(40)
    finally:
        await incidents.stop()
    assert looks == [("a", 0), ("a", 4), ("b", 8), ("a", 25), ("b", 25)], looks


def _status(phase: str, next_step_in: float | None = None, **escalation: Any) -> dict[str, Any]:
    esc: dict[str, Any] = {"startedAt": "2026-12-01T00:00:00Z", **escalation}
    if next_step_in is not None:
        esc["nextStepAt"] = (EPOCH + dt.timedelta(seconds=next_step_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"phase": phase, "escalation": esc}


NOW, AFTER, LAST = due_hints.AT_ONCE, due_hints.AFTER, due_hints.LAST
PENDING = [{"key": "k", "result": "Pending"}]


@pytest.mark.parametrize(
    ("status", "rank"),
    [
        ({}, NOW),  # not opened yet: the opening is due now
        (_status("Triggered", 600, level=1), LAST),  # its next step ten minutes away
        (_status("Triggered", 61, level=1), LAST),  # just beyond the slack
        (_status("Triggered", 30, level=1), NOW),  # due within the slack: the list's tail may take that long
        (_status("Triggered", -5, level=1), NOW),  # overdue
        (_status("Triggered", 600, level=1, notifications=PENDING), NOW),  # a claim to send again
        (_status("Triggered", level=1), AFTER),  # every level paged, nothing named: nothing due
        (_status("Triggered", level=1, nextReminderAt="2026-12-01T00:00:30Z"), NOW),  # a reminder due soon
        (_status("Triggered", level=1, nextReminderAt="not a time"), NOW),  # unreadable: look now
        (_status("Triggered"), NOW),  # started but nothing paged yet
        ({"phase": "Triggered"}, NOW),  # never escalated
        (_status("Triggered", level=1, notifications=PENDING), NOW),
        (_status("Triggered", level=1, notifications=[{"key": "k", "result": "Held"}]), NOW),  # the page budget's
        (
            {**_status("Triggered", level=1), "conditions": [{"type": "InMaintenance", "status": "True"}]},
            NOW,  # a window holds its pages: its end is due
        ),
        (_status("Acknowledged", 600, level=2), AFTER),  # an acknowledgement may still be told, no page
        (_status("Acknowledged", 30, level=2), NOW),  # a step named soon
        (_status("Resolved", level=1), AFTER),  # a resolution not told to everybody yet
        (_status("Resolved", level=1, notifications=PENDING), NOW),
        (_status("Resolved", closed=True), LAST),  # told: only its review is left
    ],
)
def test_a_listing_hands_on_what_may_page_first_and_what_cannot_be_due_soon_last(
    status: dict[str, Any], rank: int
) -> None:
    assert due_hints.rank({"metadata": {"name": "i"}, "status": status}, EPOCH) == rank


@pytest.mark.looptime
async def test_an_incident_nobody_opened_is_opened_when_its_creators_grace_ends_without_another_event(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's create went through and its opening write did not (and Alertmanager gave up): no event
    comes again, and the loop opens it at the grace's end, once. One opened in time is never opened again."""
    elapsed, clock = virtual_clock()
    opened: list[tuple[str, float]] = []

    async def open_it(ctx: Any, raw: Any) -> None:
        opened.append((raw["metadata"]["name"], round(elapsed(), 1)))

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        return escalation.Looked(None, None)

    def made(name: str, by_us: bool, version: str = "1") -> dict[str, Any]:
        labels = {"app.kubernetes.io/managed-by": "oncall-operator"} if by_us else {}
        meta = {"namespace": "ns", "name": name, "resourceVersion": version, "labels": labels}
        return {"metadata": {**meta, "creationTimestamp": "2026-12-01T00:00:00Z"}, "status": {}}

    monkeypatch.setattr(opening, "changed", open_it)
    monkeypatch.setattr(escalation, "escalate", escalate)
    incidents = open_incidents.OpenIncidents(clock)
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), Indices())
    incidents.start(ctx)
    try:
        await incidents.seen(ctx, made("left", by_us=True))  # its creator's opening write never comes
        await incidents.seen(ctx, made("in-time", by_us=True))
        await incidents.seen(ctx, made("by-hand", by_us=False))  # its own event's handler opens it (here: not)
        await asyncio.sleep(10)
        await incidents.seen(ctx, with_version("in-time", "2"))  # the creator's opening write
        await asyncio.sleep(80)
    finally:
        await incidents.stop()
    assert [name for name, _ in opened] == ["by-hand", "left"], opened
    assert 5 <= opened[0][1] <= 5.2 and 60 <= opened[1][1] <= 60.2, opened
    assert ("ns", "in-time") in incidents.entries
    assert ("ns", "left") not in incidents.entries and ("ns", "by-hand") not in incidents.entries, (
        "still unopened after the attempt (held by the cap): not kept, it opens at its next event; "
        "an opened one comes back through its write's event"
    )


@pytest.mark.looptime
async def test_the_look_that_sends_what_the_intake_claimed_is_given_its_write_not_a_copy_to_validate(
    acting: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's opening write is handed over as it was made (issue 18: validated twice per alert); a newer
    body stored before the look is looked at as stored, never with the older write's model."""
    _, clock = virtual_clock()
    given: list[tuple[str, Any, tuple[Any, ...]]] = []

    async def escalate(ctx: Any, raw: Any, handed: Any = (), parsed: Any = None) -> escalation.Looked:
        given.append((raw["metadata"]["resourceVersion"], parsed, tuple(handed)))
        return escalation.Looked(None, None)

    monkeypatch.setattr(escalation, "escalate", escalate)
    kept = open_incidents.OpenIncidents(clock)
    ctx: Any = Ctx(config.Config(tick_seconds=5, recheck_seconds=3600), Indices())
    model: Any = object()  # what the writer knew: passed on as it is
    send: Any = "page/L1"
    kept.hand(ctx, Written(True, body("a"), model), [send])
    await asyncio.gather(*kept.sending)
    assert given == [("1", model, (send,))]

    newer = {**body("b"), "metadata": {"namespace": "ns", "name": "b", "resourceVersion": "3"}}
    kept.see(newer)
    kept.hand(ctx, Written(True, body("b"), model), [send])  # its write's answer came after the event
    await asyncio.gather(*kept.sending)
    assert given[1] == ("3", None, (send,))  # the body kept, validated by the look itself
