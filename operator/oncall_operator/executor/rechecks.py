"""The operator's own loop that checks each Schedule, Policy, Runbook, window and Heartbeat again, not Kopf timers.

A Schedule's on-call status moves with the clock, and a Policy or Runbook turns Ready by itself
when what it names appears later (the schedule applied after its policy, a Secret created
afterwards), so each object is checked again every ``ONCALL_RECHECK_SECONDS``; a Heartbeat is
ticked every ``ONCALL_TICK_SECONDS`` (its deadline is a matter of seconds). Kopf's timers
would do that, but a timer makes Kopf put its finalizer on every object: a Schedule, Policy or
Runbook deleted while no operator runs would then hang until one comes back. So Kopf only
watches (``on.event``, no finalizer): its handlers hand each body to :meth:`Rechecks.see`, and
one task started with the operator checks every body it holds again, only while this replica
acts (peering). A deleted object is forgotten on its DELETED event.

Nothing here is the truth: each check writes under the body's resourceVersion, so a stale body
costs a refused write, and the newer body arrives with its own event.
"""

import asyncio
import collections.abc as cabc
import logging
import time
from typing import Any

from oncall_operator.adapters import apiserver, peering, tasks
from oncall_operator.api import kinds
from oncall_operator.executor import context, heartbeats, ready

log = logging.getLogger(__name__)
Key = tuple[str, str, str]
Check = cabc.Callable[[context.Context, cabc.Mapping[str, Any]], cabc.Awaitable[None]]
CHECKS: dict[str, Check] = {
    kinds.SCHEDULE.plural: ready.check_schedule,
    kinds.POLICY.plural: ready.check_policy,
    kinds.RUNBOOK.plural: ready.check_runbook,
    kinds.MAINTENANCE.plural: ready.check_window,
    kinds.HEARTBEAT.plural: heartbeats.tick,
}
EVERY_TICK = frozenset({kinds.HEARTBEAT.plural})
"""Kinds looked at every tick rather than every recheck."""
CONCURRENCY = 4


class Rechecks:
    """The latest body of every Schedule, Policy and Runbook by (plural, namespace, name), and the loop."""

    def __init__(self) -> None:
        self.bodies: dict[Key, cabc.Mapping[str, Any]] = {}
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def key(plural: str, body: cabc.Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        return (plural, meta.get("namespace") or "", meta["name"])

    async def changed(self, ctx: context.Context, plural: str, event: str, body: cabc.Mapping[str, Any]) -> None:
        """Kopf's event for one object: keep (or forget) its body, and check a live one at once."""
        if event == "DELETED":
            self.bodies.pop(self.key(plural, body), None)
            return
        self.see(plural, body)
        try:
            await CHECKS[plural](ctx, body)
        except Exception as error:  # the API server down or restarting: the recheck loop retries
            if apiserver.unavailable(error) is None:
                raise
            _failed(error, self.key(plural, body))

    def see(self, plural: str, body: cabc.Mapping[str, Any]) -> None:
        self.bodies[self.key(plural, body)] = dict(body)

    async def check_all(self, ctx: context.Context, plurals: cabc.Container[str] = tuple(CHECKS)) -> int:
        """Check every object of ``plurals`` held once; how many were checked. One failure never stops the others."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(key: Key, body: cabc.Mapping[str, Any]) -> None:
            async with gate:
                try:
                    await CHECKS[key[0]](ctx, body)
                except Exception as error:  # the next round retries; a bad object must not stop the loop
                    _failed(error, key)

        items = [(key, body) for key, body in self.bodies.items() if key[0] in plurals]
        await asyncio.gather(*(one(key, body) for key, body in items))
        return len(items)

    def start(self, ctx: context.Context) -> None:
        self.task = asyncio.create_task(self._loop(ctx), name="object rechecks")

    async def stop(self) -> None:
        await tasks.cancel(self.task)
        self.task = None

    async def _loop(self, ctx: context.Context) -> None:
        tick, recheck = ctx.config.tick_seconds, ctx.config.recheck_seconds
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(tick, recheck))
            if not peering.acting():
                continue
            due = set(EVERY_TICK)
            if time.monotonic() - last >= recheck:
                last = time.monotonic()
                due |= set(CHECKS)
            await self.check_all(ctx, due)


def _failed(error: BaseException, key: Key) -> None:
    apiserver.log_retried(log, error, "%s %s/%s: Ready check failed; retrying at the next recheck", *key)
