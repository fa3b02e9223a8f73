"""The open Incidents in memory, and the one loop that looks at each when something is due.

Escalation and the OOM quiet period are about time passing, not only about changes. Kopf's
timers would do it, but a timer makes Kopf put its finalizer on every Incident: writes on each
Incident (measured: three PATCHes per remediation) and an Incident that cannot be deleted while
no operator runs. So Kopf only watches: :func:`incident_seen` keeps the latest body of every
open Incident in :class:`Board` and looks at it at once (a new Incident pages without waiting
for a tick); one task started with the operator looks again at each Incident whose next step is
due (``wake_at`` from the engine), at every Incident after a Schedule, Policy or Runbook changed,
and at each Mitigated OOM Incident every ``ONCALL_RECHECK_SECONDS``. It acts only while this
replica acts (peering); Kopf delivers events only then anyway.

Nothing here is the truth: every decision is taken again on the Incident's status under a
resourceVersion precondition, so a stale body costs a 409 and a read, never a second page.
After a restart or a resume Kopf's listing fills the board again. An Incident deleted while
this replica stood by stays here until its next due look finds it gone.
"""

import asyncio
import collections.abc as cabc
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from typing import Any

import kopf

from oncall_operator.adapters import events, kube, peering, workloads
from oncall_operator.api import GROUP, VERSION, kinds
from oncall_operator.handlers import escalation, objects, remediation, settings

log = logging.getLogger(__name__)
Key = tuple[str, str]
TICK = settings.CONFIG.tick_seconds
RECHECK = settings.CONFIG.recheck_seconds
CONCURRENCY = 8


@dataclasses.dataclass
class Entry:
    body: cabc.Mapping[str, Any]
    wake_at: dt.datetime | None = None
    looked: int = -1
    """The indices' generation at the last look; -1: not looked at yet."""

    def due(self, now: dt.datetime, generation: int) -> bool:
        return self.looked != generation or (self.wake_at is not None and self.wake_at <= now)


class Board:
    """Open Incidents by (namespace, name): the newest body seen, and when each is next due."""

    def __init__(self) -> None:
        self.entries: dict[Key, Entry] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def see(self, body: cabc.Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        entry = self.entries.get(key)
        if not escalation.is_open(body.get("status") or {}):
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


def _not_older(new: str | None, old: str | None) -> bool:
    """resourceVersions are opaque, but etcd's are increasing integers: an older one is a late event."""
    try:
        return int(new or "") >= int(old or "")
    except ValueError:
        return True


async def look(memo: Any, key: Key, settle: bool = False) -> None:
    """Escalate one Incident (and settle it when asked); errors are logged, the next look retries."""
    board: Board = memo.board
    indices: objects.Indices = memo.indices
    async with board.lock(key):
        entry = board.entries.get(key)
        if entry is None:
            return
        generation = indices.generation
        try:
            looked = await escalation.escalate(entry.body, memo, indices)
            if looked.raw is not None:
                board.see(looked.raw)
            entry.wake_at, entry.looked = looked.wake_at, generation
            if settle and remediation.wants_settling(entry.body):
                raw = await remediation.settle(entry.body, memo, indices)
                if raw is not None:
                    board.see(raw)
        except Exception:  # one Incident's trouble must not stop the others; the next tick retries
            log.exception("Incident %s/%s: escalation look failed; retrying at the next tick", *key)
            entry.looked = -1


@kopf.on.event(GROUP, VERSION, kinds.INCIDENT.plural)
async def incident_seen(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    objects.mark_filled(memo)
    if type == "DELETED":
        memo.board.forget((body["metadata"]["namespace"], body["metadata"]["name"]))
        return
    key = memo.board.see(dict(body))
    await look(memo, key)


async def _loop(memo: Any) -> None:
    board: Board = memo.board
    settled = time.monotonic()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(key: Key, settle: bool) -> None:
        async with gate:
            await look(memo, key, settle)

    while True:
        await asyncio.sleep(TICK)
        if not peering.acting():
            continue
        settle = time.monotonic() - settled >= RECHECK
        if settle:
            settled = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        generation = memo.indices.generation
        keys = [
            key
            for key, entry in list(board.entries.items())
            if entry.due(now, generation) or (settle and remediation.wants_settling(entry.body))
        ]
        await asyncio.gather(*(one(key, settle) for key in keys))


@kopf.on.startup()
async def board_start(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
    memo.board = Board()
    memo.api = workloads.Api(memo.kube)  # async client: the Incident status writes of the loop and the handlers
    memo.secrets = kube.SecretValues(memo.kube)  # here: Kopf gives each object's handlers a copy of memo
    memo.board_events = events.Poster(memo.api, settings)  # Kopf's poster serves only Kopf's tasks
    memo.board_loop = memo.board_events.spawn(_loop(memo), "escalation loop")


@kopf.on.cleanup()
async def board_stop(memo: Any, **_: Any) -> None:
    task = getattr(memo, "board_loop", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await memo.board_events.close()
        await memo.api.close()
