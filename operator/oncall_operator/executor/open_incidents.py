"""The open Incidents in memory, and the one loop that looks at each when its escalation or settling is due.

Escalation and the OOM quiet period are about time passing, not only about changes. Kopf's
timers would do it, but a timer makes Kopf put its finalizer on every Incident: writes on each
Incident (measured: three PATCHes per remediation) and an Incident that cannot be deleted while
no operator runs. So the Incident watch only watches: every change is handed to
:meth:`OpenIncidents.seen`, which keeps the latest body of every open Incident and looks at it
at once (a new Incident pages without waiting for a tick); one task started with the operator
looks again at each Incident whose next step is due (``wake_at`` from the engine: the loop
sleeps until the soonest of them, at most ``ONCALL_TICK_SECONDS``, so a due page is not late by a
tick; a look that sets a sooner ``wake_at`` wakes the loop early, and the turns between two ticks
read the due ones from a heap instead of scanning every entry), at every
Incident after a Schedule, Policy or Runbook changed, and at each Mitigated OOM Incident every
``ONCALL_RECHECK_SECONDS``. It acts only while this
replica acts (peering); the Incident watch delivers events only then anyway. Each of its looks is a task of
its own (one per Incident at a time), so a tick never waits for a slow channel: a black-holed
webhook delays its own Incident, not the level 2 of the others.

Nothing here is the truth: every decision is taken again on the Incident's status under a
resourceVersion precondition, so a stale body costs a 409 and a read, never a second page.
After a restart or a resume the Incident watch's listing fills it again. An Incident deleted while
this replica stood by is forgotten when that listing hands it on as DELETED.
"""

import asyncio
import collections
import collections.abc as cabc
import contextlib
import dataclasses
import datetime as dt
import heapq
import logging
import sys
import time
import zlib
from typing import Any

import pydantic_core

from oncall_operator.adapters import apiserver, incidents, metrics, peering, tasks
from oncall_operator.domain import due_hints
from oncall_operator.domain.escalation import Send
from oncall_operator.executor import context, escalation, opening, patching, settle

log = logging.getLogger(__name__)
Key = tuple[str, str]
BATCH = 256
"""Looks the loop has in flight at most: 10,000 Incidents to look at after a takeover are started in
order of when they are due, not all at once. A look at a step due is not gated narrower: each is
bounded (a send gives up after ``delivering.SEND_TIMEOUT``), the API client's pool bounds the
requests, and a gate of 16 looks had let 16 sends hanging on a black-holed channel hold back every
other due page, and due pages wait behind an alert storm's 32 intake writes at once (issue 18:
30-60 s late)."""
SWEEP = 16
"""Looks at once at Incidents this replica never looked at (a takeover's or a start's catch-up, where
the Incident watch's ranked listing is handing the due ones on): their looks mostly find nothing due,
and 256 at once made the first due page of a takeover wait behind them."""
SHORTEST_SLEEP = 0.05
"""Seconds the loop sleeps at least: a step due in the past or right now is looked at on the next turn."""
STANDBY_SLEEP = 1.0
"""Seconds between two checks of whether this replica acts now, while it stands by."""
WARM = 512
"""Entries kept as plain JSON, the last stored: an alert's Incident is stored three or four times within
seconds of its creation (the intake's write, its events, the outcome), and compressing each time was
more of a storm's CPU than the JSON (issue 18). The older ones are compressed (:meth:`Entry.chill`)."""


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(slots=True)
class Entry:
    """One open Incident as compressed compact JSON (no managedFields): a parsed body costs several times its text.

    10,000 open Incidents held as parsed dicts took the operator past its memory limit (issue 18);
    as compact JSON they were still the largest thing it kept (28 MiB of a restarted replica's
    122 MiB of Python objects at 9,900 open), and an Incident's JSON compresses 2.4-fold (2,974 to 1,225 bytes) at
    zlib's fastest level. The body is unpacked only for a look, which is rare next to the loop's
    scans of ``wake_at``. One just stored stays plain JSON until :meth:`chill` (:data:`WARM`).
    """

    packed: bytes
    """The compact JSON, zlib-compressed once :attr:`cold`."""
    version: str | None
    settles: bool
    """Whether the settling of Mitigated OOM Incidents wants it (from the body, kept when stored)."""
    wake_at: dt.datetime | None = None
    looked: int = -1
    """The indices' generation at the last look; -1: not looked at yet."""
    judged: str | None = None
    """The resourceVersion the last look decided on (the one it wrote, or the one it read)."""
    hint: dt.datetime | None = None
    """When the Incident itself says its next step or reminder is due (None: something may be due now)."""
    handed: tuple[Send, ...] = ()
    """Steps this process claimed in another write (the intake's opening), for the next look to send."""
    fresh: incidents.Written | None = None
    """That write, as its writer knew it (body and model), until the next look or store: the look that
    sends what it claimed neither unpacks nor validates the Incident again (issue 18)."""
    cold: bool = True

    @classmethod
    def of(cls, body: cabc.Mapping[str, Any], warm: bool = False) -> "Entry":
        entry = cls(b"", None, False)
        entry.store(body, warm)
        return entry

    def store(self, body: cabc.Mapping[str, Any], warm: bool = False) -> None:
        """Keep ``body``; ``warm``: as plain JSON until :meth:`chill` (the caller keeps count of the warm ones)."""
        meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
        self.packed, self.cold, self.fresh = pydantic_core.to_json({**body, "metadata": meta}), False, None
        if not warm:
            self.chill()
        self.version, self.settles = meta.get("resourceVersion"), settle.wants_settling(body)
        self.hint = due_hints.hint(body.get("status") or {})

    def chill(self) -> None:
        """Compress the body, if it is not already."""
        if not self.cold:
            self.packed, self.cold = zlib.compress(self.packed, 1), True

    @property
    def text(self) -> bytes:
        """The body as compact JSON."""
        return zlib.decompress(self.packed) if self.cold else self.packed

    @property
    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = pydantic_core.from_json(self.text)
        return found

    def due(self, now: dt.datetime, generation: int) -> bool:
        return self.looked != generation or (self.wake_at is not None and self.wake_at <= now)

    def judged_already(self, now: dt.datetime, generation: int) -> bool:
        """Whether a look would decide again on the very body the last look decided on, nothing being due.

        The events of this process's own writes (the claim, the outcome) bring back what its look
        wrote: looking again would parse and decide for nothing (half the looks in an alert storm).
        """
        return self.judged is not None and self.judged == self.version and not self.due(now, generation)

    def defer(self, now: dt.datetime, generation: int) -> bool:
        """Never looked at, and its own status says when its next step is due: wait for then, no look now.

        After a takeover or a restart the Incident watch's listing brings every open Incident at once; looking at
        each on arrival would page the due ones only once all before them in the listing were judged
        (issue 18: 10,000 open). What the status says was the last acting replica's judgement.
        """
        if self.looked != -1 or self.hint is None or self.hint <= now:
            return False
        self.wake_at, self.looked = self.hint, generation
        return True

    def priority(self, now: dt.datetime) -> dt.datetime:
        """When this look was due (the soonest first, when the loop has more to look at than it starts at once)."""
        return self.wake_at if self.wake_at is not None and self.wake_at < now else now


class OpenIncidents:
    """Open Incidents by (namespace, name): the newest body seen, and when each is next due; and the loop."""

    def __init__(self, clock: cabc.Callable[[], dt.datetime] = wall_clock) -> None:
        self.clock = clock
        self.entries: dict[Key, Entry] = {}
        self.warm: dict[Key, None] = {}
        """The keys of the entries kept as plain JSON, the least recently stored first (at most :data:`WARM`)."""
        self.planned: dt.datetime | None = None
        """When the loop means to wake next; a look that sets a sooner ``wake_at`` wakes it early."""
        self.nudge = asyncio.Event()
        self.lock = patching.Locks[Key]()
        """One look at a time per Incident."""
        self.task: asyncio.Task[None] | None = None
        self.looking: dict[Key, asyncio.Task[None]] = {}
        """The loop's looks in flight: one per Incident, and the loop never waits for them."""
        self.sending: set[asyncio.Task[None]] = set()
        """The looks sending what the intake claimed (:meth:`hand`)."""
        self.wakes: list[tuple[dt.datetime, Key]] = []
        """A heap of (``wake_at``, key), pushed by each look: the loop's turn between two scans reads
        only what is due from it. A pair whose entry has moved its ``wake_at`` since is skipped."""
        self.backlog: collections.deque[Key] = collections.deque()
        """Due keys not started yet (more were due than :data:`BATCH`), soonest first."""
        self.catching_up: collections.deque[Key] = collections.deque()
        """Keys never looked at by this replica, not started yet (a takeover's catch-up, :data:`SWEEP`)."""
        self.sweeping: set[asyncio.Task[None]] = set()
        """The catch-up's looks in flight."""
        self.queued: dict[Key, bool] = {}
        """The keys in :attr:`backlog` and :attr:`catching_up`, and whether their look settles too."""

    def see(self, body: cabc.Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        key = (sys.intern(meta["namespace"]), sys.intern(meta["name"]))  # one string for every structure keeping it
        entry = self.entries.get(key)
        if entry is not None and not _newer(meta.get("resourceVersion"), entry.version):
            # a late event (the create's, arriving after the intake's opening write was kept), or the
            # event of this process's own write, whose answer was kept already: the same body again
            return key
        if not due_hints.is_open(body.get("status") or {}) and not due_hints.unopened(body):
            self.forget(key)
        else:
            if entry is None:
                self.entries[key] = Entry.of(body, warm=True)
            else:
                entry.store(body, warm=True)
            self.warm.pop(key, None)
            self.warm[key] = None
            while len(self.warm) > WARM:
                oldest = next(iter(self.warm))
                del self.warm[oldest]
                if (chilled := self.entries.get(oldest)) is not None:
                    chilled.chill()
        return key

    def forget(self, key: Key) -> None:
        self.entries.pop(key, None)
        self.warm.pop(key, None)

    async def seen(self, ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
        """An Incident changed (Kopf's event): keep its body and look at it at once, unless judged already."""
        await self.look(ctx, self.see(body), changed_only=True)

    def hand(self, ctx: context.Context, written: incidents.Written, claimed: cabc.Sequence[Send]) -> None:
        """Steps claimed by this process's intake in the write it made: a look of their own sends them now.

        The intake does not wait for it. Should this process die before the send, the claim is
        an earlier process's at the restart, and the step is sent again (:mod:`~oncall_operator.domain.delivery`).
        """
        key = self.see(written.raw)
        entry = self.entries.get(key)
        if entry is None:
            return
        entry.handed += tuple(claimed)
        if entry.version == written.raw["metadata"].get("resourceVersion"):
            entry.fresh = written
        task = asyncio.create_task(self.look(ctx, key), name=f"send {key[0]}/{key[1]}")
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def look(self, ctx: context.Context, key: Key, settling: bool = False, changed_only: bool = False) -> None:
        """Escalate one Incident (and settle it when asked); errors are logged, the next look retries."""
        async with self.lock(key):
            entry = self.entries.get(key)
            if entry is None:
                return
            generation = ctx.indices.generation
            now = self.clock()
            fresh, entry.fresh = entry.fresh, None
            if not changed_only and entry.wake_at is not None and entry.wake_at <= now:
                metrics.LOOK_DELAY.observe((now - entry.wake_at).total_seconds())
            if changed_only and not entry.handed and entry.judged_already(now, generation):
                return
            if changed_only and not entry.handed and entry.defer(now, generation):
                self._wake(key, entry)
                return
            try:
                if due_hints.unopened(body := fresh.raw if fresh is not None else entry.body):
                    await self._open(ctx, key, entry, body, now, generation, changed_only)
                    return
                read, handed, entry.handed = entry.version, entry.handed, ()
                looked = await escalation.escalate(ctx, body, handed, fresh.incident if fresh is not None else None)
                if looked.raw is not None:
                    self.see(looked.raw)
                entry.judged = (looked.raw or {}).get("metadata", {}).get("resourceVersion") or read
                entry.wake_at, entry.looked = looked.wake_at, generation
                self._wake(key, entry)
                if settling and entry.settles:
                    raw = await settle.settle(ctx, entry.body)
                    if raw is not None:
                        self.see(raw)
            except Exception as error:  # one Incident's trouble must not stop the others; the next tick retries
                apiserver.log_retried(
                    log, error, "Incident %s/%s: escalation look failed; retrying at the next tick", *key
                )
                entry.looked = -1

    async def _open(
        self,
        ctx: context.Context,
        key: Key,
        entry: Entry,
        body: dict[str, Any],
        now: dt.datetime,
        generation: int,
        changed_only: bool,
    ) -> None:
        """An Incident nobody opened yet: its creator's opening write is due until the grace ends; then it is
        opened here, whether or not another event comes (a create whose opening write failed, and whose
        creator gave up, would otherwise wait for the next restart: a page lost until then)."""
        deadline = opening.creator_deadline(body["metadata"])
        entry.looked = generation
        if deadline is not None and now < deadline:
            entry.wake_at = deadline
        elif changed_only:  # the event's own handler has just opened it: look again only if that did not take
            entry.wake_at = now + dt.timedelta(seconds=ctx.config.tick_seconds)
        else:
            entry.wake_at = None
            await opening.changed(ctx, body)  # its write's event brings it back opened
            current = self.entries.get(key)  # held by the cap, it opens at its next event: not kept here, where
            if current is not None and due_hints.unopened(
                current.body
            ):  # only a creator's grace may keep an unopened one
                self.forget(key)  # (a namespace may make any number of unopened Incidents)
            return
        self._wake(key, entry)

    def _wake(self, key: Key, entry: Entry) -> None:
        """Remember when the entry is due, and wake the loop early for a step due before its planned wake
        (a past one waits for the loop's next turn: no spin)."""
        wake_at = entry.wake_at
        if wake_at is None:
            return
        heapq.heappush(self.wakes, (wake_at, key))
        if self.clock() < wake_at and (self.planned is None or wake_at < self.planned):
            self.nudge.set()

    def start(self, ctx: context.Context) -> None:
        self.task = asyncio.create_task(self._loop(ctx), name="escalation loop")

    async def stop(self) -> None:
        await tasks.cancel(self.task)
        for task in [*self.looking.values(), *self.sending]:
            await tasks.cancel(task)
        self.task = None

    async def _loop(self, ctx: context.Context) -> None:
        """Each turn starts the due looks; every open Incident is scanned once a tick, the turns between
        read only :attr:`wakes` (issue 18: a scan of 10,000 entries at every 50 ms turn was an eighth of
        the operator's CPU in the 10k storm)."""
        cfg = ctx.config
        settled = time.monotonic()
        scanned: tuple[dt.datetime, int] | None = None
        """When the last scan was, and at which generation of the indices."""

        sleep = cfg.tick_seconds
        while True:
            self.planned = self.clock() + dt.timedelta(seconds=sleep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.nudge.wait(), sleep)
            self.nudge.clear()
            sleep = cfg.tick_seconds
            if not peering.acting():  # standing by: notice a takeover within a second, not a tick
                sleep = min(sleep, STANDBY_SLEEP)
                scanned = None
                continue
            settling = time.monotonic() - settled >= cfg.recheck_seconds
            if settling:
                settled = time.monotonic()
            now, generation = self.clock(), ctx.indices.generation
            tick = dt.timedelta(seconds=cfg.tick_seconds)
            if settling or scanned is None or scanned[1] != generation or now - scanned[0] >= tick:
                scanned = (now, generation)
                due = self._scan(now, generation, settling)
            else:
                due = self._pop_due(now)
            for key in due:
                if key not in self.queued:
                    never = (entry := self.entries.get(key)) is not None and entry.looked == -1
                    (self.catching_up if never else self.backlog).append(key)
                self.queued[key] = self.queued.get(key, False) or settling
            self._start(ctx)
            soonest = self._soonest()
            if soonest is not None:
                sleep = min(sleep, max(SHORTEST_SLEEP, (soonest - now).total_seconds()))
            if self.backlog or self.catching_up:  # the loop comes back for the rest
                sleep = SHORTEST_SLEEP

    def _start(self, ctx: context.Context) -> None:
        """Start the looks the backlogs hold: due steps first, as many as :data:`BATCH` allows, then the
        catch-up over Incidents never looked at, :data:`SWEEP` at once. Each look on its own task: a slow
        channel delays its own Incident only."""
        room = BATCH - len(self.looking)
        for backlog, most in ((self.backlog, None), (self.catching_up, SWEEP)):
            while room > 0 and backlog and (most is None or len(self.sweeping) < most):
                key = backlog.popleft()
                settles = self.queued.pop(key)
                if key in self.looking or key not in self.entries:
                    continue  # a look in flight sets its own next wake
                task = asyncio.create_task(self.look(ctx, key, settles), name=f"look {key[0]}/{key[1]}")
                self.looking[key] = task
                task.add_done_callback(lambda _, k=key: self.looking.pop(k, None))  # type: ignore[misc]
                if most is not None:
                    self.sweeping.add(task)
                    task.add_done_callback(self.sweeping.discard)
                room -= 1

    def _scan(self, now: dt.datetime, generation: int, settling: bool) -> list[Key]:
        """Every due entry, soonest first; :attr:`wakes` rebuilt from the entries (no stale pair survives a tick)."""
        due: list[tuple[dt.datetime, Key]] = []
        wakes: list[tuple[dt.datetime, Key]] = []
        for key, entry in self.entries.items():
            if entry.due(now, generation) or (settling and entry.settles):
                due.append((entry.priority(now), key))
            elif entry.wake_at is not None:
                wakes.append((entry.wake_at, key))
        heapq.heapify(wakes)
        self.wakes = wakes
        return [key for _, key in sorted(due)]

    def _pop_due(self, now: dt.datetime) -> list[Key]:
        """The entries whose ``wake_at`` has come, from :attr:`wakes` (soonest first)."""
        due = []
        while self.wakes and self.wakes[0][0] <= now:
            at, key = heapq.heappop(self.wakes)
            entry = self.entries.get(key)
            if entry is not None and entry.wake_at == at:
                due.append(key)
        return due

    def _soonest(self) -> dt.datetime | None:
        """The next ``wake_at`` still meant (stale pairs on top of :attr:`wakes` dropped)."""
        while self.wakes:
            at, key = self.wakes[0]
            entry = self.entries.get(key)
            if entry is not None and entry.wake_at == at:
                return at
            heapq.heappop(self.wakes)
        return None


def _newer(new: str | None, old: str | None) -> bool:
    """resourceVersions are opaque, but etcd's are increasing integers: an older one is a late event, an
    equal one the same body. One that does not parse counts as newer (kept: nothing is missed)."""
    try:
        return int(new or "") > int(old or "")
    except ValueError:
        return True
