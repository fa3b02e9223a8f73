"""The open Incidents in memory, and the one loop that looks at each when its escalation or settling is due.

Escalation and the OOM quiet period are about time passing, not only about changes. Kopf's
timers would do it, but a timer makes Kopf put its finalizer on every Incident: writes on each
Incident (measured: three PATCHes per remediation) and an Incident that cannot be deleted while
no operator runs. So Kopf only watches: its Incident handler hands every change to
:meth:`OpenIncidents.seen`, which keeps the latest body of every open Incident and looks at it
at once (a new Incident pages without waiting for a tick); one task started with the operator
looks again at each Incident whose next step is due (``wake_at`` from the engine: the loop
sleeps until the soonest of them, at most ``ONCALL_TICK_SECONDS``, so a due page is not late by a
tick; a look that sets a sooner ``wake_at`` wakes the loop early), at every
Incident after a Schedule, Policy or Runbook changed, and at each Mitigated OOM Incident every
``ONCALL_RECHECK_SECONDS``. It acts only while this
replica acts (peering); Kopf delivers events only then anyway. Each of its looks is a task of
its own (one per Incident at a time), so a tick never waits for a slow channel: a black-holed
webhook delays its own Incident, not the level 2 of the others.

Nothing here is the truth: every decision is taken again on the Incident's status under a
resourceVersion precondition, so a stale body costs a 409 and a read, never a second page.
After a restart or a resume Kopf's listing fills it again. An Incident deleted while
this replica stood by stays here until its next due look finds it gone.
"""

import asyncio
import collections.abc as cabc
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import time
from typing import Any

from oncall_operator.adapters import apiserver, peering, tasks
from oncall_operator.api import incident
from oncall_operator.executor import context, escalation, settle

log = logging.getLogger(__name__)
Key = tuple[str, str]
CONCURRENCY = 16
"""Looks at once from the loop; each is bounded (a send gives up after ``delivering.SEND_TIMEOUT``)."""
SHORTEST_SLEEP = 0.05
"""Seconds the loop sleeps at least: a step due in the past or right now is looked at on the next turn."""
STANDBY_SLEEP = 1.0
"""Seconds between two checks of whether this replica acts now, while it stands by."""


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class Entry:
    """One open Incident as compact JSON (no managedFields): a parsed body costs several times its text.

    10,000 open Incidents held as parsed dicts took the operator past its memory limit (issue 18);
    the body is parsed only for a look, which is rare next to the loop's scans of ``wake_at``.
    """

    raw: bytes
    version: str | None
    settles: bool
    """Whether the settling of Mitigated OOM Incidents wants it (from the body, kept when stored)."""
    wake_at: dt.datetime | None = None
    looked: int = -1
    """The indices' generation at the last look; -1: not looked at yet."""
    judged: str | None = None
    """The resourceVersion the last look decided on (the one it wrote, or the one it read)."""

    @classmethod
    def of(cls, body: cabc.Mapping[str, Any]) -> "Entry":
        entry = cls(b"", None, False)
        entry.store(body)
        return entry

    def store(self, body: cabc.Mapping[str, Any]) -> None:
        meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
        self.raw = json.dumps({**body, "metadata": meta}, separators=(",", ":")).encode()
        self.version, self.settles = meta.get("resourceVersion"), settle.wants_settling(body)

    @property
    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.raw)
        return found

    def due(self, now: dt.datetime, generation: int) -> bool:
        return self.looked != generation or (self.wake_at is not None and self.wake_at <= now)

    def judged_already(self, now: dt.datetime, generation: int) -> bool:
        """Whether a look would decide again on the very body the last look decided on, nothing being due.

        The events of this process's own writes (the claim, the outcome) bring back what its look
        wrote: looking again would parse and decide for nothing (half the looks in an alert storm).
        """
        return self.judged is not None and self.judged == self.version and not self.due(now, generation)


class OpenIncidents:
    """Open Incidents by (namespace, name): the newest body seen, and when each is next due; and the loop."""

    def __init__(self, clock: cabc.Callable[[], dt.datetime] = wall_clock) -> None:
        self.clock = clock
        self.entries: dict[Key, Entry] = {}
        self.planned: dt.datetime | None = None
        """When the loop means to wake next; a look that sets a sooner ``wake_at`` wakes it early."""
        self.nudge = asyncio.Event()
        self._locks: dict[Key, asyncio.Lock] = {}
        self.task: asyncio.Task[None] | None = None
        self.looking: dict[Key, asyncio.Task[None]] = {}
        """The loop's looks in flight: one per Incident, and the loop never waits for them."""

    def see(self, body: cabc.Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        entry = self.entries.get(key)
        if not is_open(body.get("status") or {}):
            self.forget(key)
        elif entry is None:
            self.entries[key] = Entry.of(body)
        elif _not_older(meta.get("resourceVersion"), entry.version):
            entry.store(body)
        return key

    def forget(self, key: Key) -> None:
        self.entries.pop(key, None)
        self._locks.pop(key, None)

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def seen(self, ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
        """An Incident changed (Kopf's event): keep its body and look at it at once, unless judged already."""
        await self.look(ctx, self.see(body), changed_only=True)

    async def look(self, ctx: context.Context, key: Key, settling: bool = False, changed_only: bool = False) -> None:
        """Escalate one Incident (and settle it when asked); errors are logged, the next look retries."""
        async with self.lock(key):
            entry = self.entries.get(key)
            if entry is None:
                return
            generation = ctx.indices.generation
            if changed_only and entry.judged_already(self.clock(), generation):
                return
            try:
                read = entry.version
                looked = await escalation.escalate(ctx, entry.body)
                if looked.raw is not None:
                    self.see(looked.raw)
                entry.judged = (looked.raw or {}).get("metadata", {}).get("resourceVersion") or read
                entry.wake_at, entry.looked = looked.wake_at, generation
                self._nudge_for(looked.wake_at)
                if settling and entry.settles:
                    raw = await settle.settle(ctx, entry.body)
                    if raw is not None:
                        self.see(raw)
            except Exception as error:  # one Incident's trouble must not stop the others; the next tick retries
                apiserver.log_retried(
                    log, error, "Incident %s/%s: escalation look failed; retrying at the next tick", *key
                )
                entry.looked = -1

    def _nudge_for(self, wake_at: dt.datetime | None) -> None:
        """Wake the loop early for a step due before its planned wake (a past one waits for the tick: no spin)."""
        if wake_at is not None and self.clock() < wake_at and (self.planned is None or wake_at < self.planned):
            self.nudge.set()

    def start(self, ctx: context.Context) -> None:
        self.task = asyncio.create_task(self._loop(ctx), name="escalation loop")

    async def stop(self) -> None:
        await tasks.cancel(self.task)
        for task in list(self.looking.values()):
            await tasks.cancel(task)
        self.task = None

    async def _loop(self, ctx: context.Context) -> None:
        cfg = ctx.config
        settled = time.monotonic()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(key: Key, settling: bool) -> None:
            async with gate:
                await self.look(ctx, key, settling)

        sleep = cfg.tick_seconds
        while True:
            self.planned = self.clock() + dt.timedelta(seconds=sleep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.nudge.wait(), sleep)
            self.nudge.clear()
            sleep = cfg.tick_seconds
            if not peering.acting():  # standing by: notice a takeover within a second, not a tick
                sleep = min(sleep, STANDBY_SLEEP)
                continue
            settling = time.monotonic() - settled >= cfg.recheck_seconds
            if settling:
                settled = time.monotonic()
            now = self.clock()
            generation = ctx.indices.generation
            keys, soonest = [], None
            for key, entry in list(self.entries.items()):
                if entry.due(now, generation) or (settling and entry.settles):
                    keys.append(key)
                elif entry.wake_at is not None and (soonest is None or entry.wake_at < soonest):
                    soonest = entry.wake_at
            if soonest is not None:
                sleep = min(sleep, max(SHORTEST_SLEEP, (soonest - now).total_seconds()))
            for key in keys:  # each look on its own: a slow channel delays its own Incident only
                if key not in self.looking:
                    task = asyncio.create_task(one(key, settling), name=f"look {key[0]}/{key[1]}")
                    self.looking[key] = task
                    task.add_done_callback(lambda _, k=key: self.looking.pop(k, None))  # type: ignore[misc]


def is_open(status: cabc.Mapping[str, Any]) -> bool:
    """Opened, and not Resolved with everybody told: the escalation may still have something to send."""
    phase = status.get("phase")
    return bool(phase) and not (phase == incident.Phase.RESOLVED.value and status.get("escalation", {}).get("closed"))


def _not_older(new: str | None, old: str | None) -> bool:
    """resourceVersions are opaque, but etcd's are increasing integers: an older one is a late event."""
    try:
        return int(new or "") >= int(old or "")
    except ValueError:
        return True
