"""The open Incidents in memory, and the one loop that looks at each when its escalation or settling is due.

Escalation and the OOM quiet period are about time passing, not only about changes. Kopf's
timers would do it, but a timer makes Kopf put its finalizer on every Incident: writes on each
Incident (measured: three PATCHes per remediation) and an Incident that cannot be deleted while
no operator runs. So Kopf only watches: its Incident handler hands every change to
:meth:`OpenIncidents.seen`, which keeps the latest body of every open Incident and looks at it
at once (a new Incident pages without waiting for a tick); one task started with the operator
looks again at each Incident whose next step is due (``wake_at`` from the engine), at every
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
import dataclasses
import datetime as dt
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


@dataclasses.dataclass
class Entry:
    body: cabc.Mapping[str, Any]
    wake_at: dt.datetime | None = None
    looked: int = -1
    """The indices' generation at the last look; -1: not looked at yet."""

    def due(self, now: dt.datetime, generation: int) -> bool:
        return self.looked != generation or (self.wake_at is not None and self.wake_at <= now)


class OpenIncidents:
    """Open Incidents by (namespace, name): the newest body seen, and when each is next due; and the loop."""

    def __init__(self) -> None:
        self.entries: dict[Key, Entry] = {}
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
            self.entries[key] = Entry(body)
        elif _not_older(meta.get("resourceVersion"), entry.body["metadata"].get("resourceVersion")):
            entry.body = body
        return key

    def forget(self, key: Key) -> None:
        self.entries.pop(key, None)
        self._locks.pop(key, None)

    def lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def seen(self, ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
        """An Incident changed (Kopf's event): keep its body and look at it at once."""
        await self.look(ctx, self.see(body))

    async def look(self, ctx: context.Context, key: Key, settling: bool = False) -> None:
        """Escalate one Incident (and settle it when asked); errors are logged, the next look retries."""
        async with self.lock(key):
            entry = self.entries.get(key)
            if entry is None:
                return
            generation = ctx.indices.generation
            try:
                looked = await escalation.escalate(ctx, entry.body)
                if looked.raw is not None:
                    self.see(looked.raw)
                entry.wake_at, entry.looked = looked.wake_at, generation
                if settling and settle.wants_settling(entry.body):
                    raw = await settle.settle(ctx, entry.body)
                    if raw is not None:
                        self.see(raw)
            except Exception as error:  # one Incident's trouble must not stop the others; the next tick retries
                apiserver.log_retried(
                    log, error, "Incident %s/%s: escalation look failed; retrying at the next tick", *key
                )
                entry.looked = -1

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

        while True:
            await asyncio.sleep(cfg.tick_seconds)
            if not peering.acting():
                continue
            settling = time.monotonic() - settled >= cfg.recheck_seconds
            if settling:
                settled = time.monotonic()
            now = dt.datetime.now(dt.UTC)
            generation = ctx.indices.generation
            keys = [
                key
                for key, entry in list(self.entries.items())
                if entry.due(now, generation) or (settling and settle.wants_settling(entry.body))
            ]
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
