"""High availability: one replica acts, the others stand by; and metrics that say which one acts.

``oncall-operator run --peering NAME`` (the chart runs two replicas so) joins Kopf's peering:
every replica keeps itself alive in the peering object NAME, and Kopf pauses each replica that
sees a live peer with a higher priority: its watches close and its timers stop. The CLI gives
the replica that started first the highest priority (:mod:`oncall_operator.domain.peering`).
A standby resumes when the leader's record expires: after a graceful exit at once (Kopf removes
its record), after a crash when the lifetime set here has passed, which bounds the takeover
time. The state a standby needs to resume is in each Incident's status, and every send is
claimed there first, so a takeover neither repeats nor skips a notification.

Kopf keeps its pause to itself, so the operator exports its own view for the chart's alerts:
``oncall_operator_active`` by Kopf's rule from the peering object (polled), and a heartbeat of
the peering watch: every replica's keep-alive changes that object every few seconds, so on the
active replica a stale heartbeat means a stalled watch.
"""

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
from typing import Any

import kopf

from oncall_operator.adapters import peering as peering_api
from oncall_operator.domain import peering
from oncall_operator.handlers import settings

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PeeringConfig:
    """Set by ``run --peering NAME --peering-lifetime S`` through the environment."""

    name: str | None = None
    """The peering object (ONCALL_PEERING); None runs standalone: one process, always active."""
    lifetime: int = 15
    """Seconds after its last keep-alive that a silent replica still counts as alive (ONCALL_PEERING_LIFETIME)."""

    @classmethod
    def from_env(cls) -> "PeeringConfig":
        return cls(
            name=os.environ.get("ONCALL_PEERING") or None,
            lifetime=int(os.environ.get("ONCALL_PEERING_LIFETIME", cls.lifetime)),
        )


PEERING = PeeringConfig.from_env()
CLUSTERWIDE = not settings.CONFIG.watch_namespaces
SCOPES: tuple[str | None, ...] = (
    (None,) if CLUSTERWIDE else tuple(ns for ns in settings.CONFIG.watch_namespaces if not set(ns) & set("*?[!"))
)
"""Where Kopf keeps the peering: cluster-wide, or a KopfPeering per watched namespace (those a
glob matches are known only from the watch, so only while this replica acts)."""
WHERE = "cluster-wide" if CLUSTERWIDE else f"in {', '.join(settings.CONFIG.watch_namespaces)}"


@kopf.on.startup()
async def peering_start(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    if PEERING.name is None:
        peering_api.set_acting(True)
        return
    settings.peering.lifetime = PEERING.lifetime
    logger.info(
        "peering %r %s: priority %d, lifetime %ds (the takeover time after a crash)",
        PEERING.name,
        WHERE,
        settings.peering.priority,
        PEERING.lifetime,
    )
    memo.peering_priority = settings.peering.priority
    memo.leadership = asyncio.create_task(_observe(memo, settings.peering.priority))


@kopf.on.cleanup()
async def peering_stop(memo: Any, **_: Any) -> None:
    task = getattr(memo, "leadership", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _observe(memo: Any, priority: int) -> None:
    """Every few seconds: does this replica act, by Kopf's rule, in every peering it is in?"""
    assert PEERING.name is not None
    interval = max(1.0, min(5.0, PEERING.lifetime / 3))
    while True:
        try:
            found = await asyncio.gather(
                *(asyncio.to_thread(peering_api.status, memo.kube, PEERING.name, ns) for ns in SCOPES)
            )
            for scope, status in zip(SCOPES, found, strict=True):
                _SEEN[scope] = status or {}
            _judge(priority)
        except Exception as error:  # a metric must never stop the operator; the next round retries
            log.warning("peering %r could not be read: %s", PEERING.name, error)
        await asyncio.sleep(interval)


_SEEN: dict[str | None, Any] = {}
"""The latest status of each peering object, from the poll or from the watch (when active)."""


def _judge(priority: int) -> None:
    now = dt.datetime.now(dt.UTC)
    records = [_SEEN.get(scope) or {} for scope in dict.fromkeys([*SCOPES, *_SEEN])]
    peering_api.set_acting(bool(records) and all(peering.leads(r, now, priority) for r in records))
    peering_api.PEERS.set(min((len(peering.live(r, now)) for r in records), default=0))


def peering_heartbeat(name: str, namespace: str | None, status: kopf.Status, memo: Any, **_: Any) -> None:
    """An index that stores nothing: Kopf calls indexers on every event, quietly (no log per call).

    The watch delivers only while this replica acts, so the event also refreshes the verdict at
    once (every keep-alive, ours included, is an event), sooner than the next poll.
    """
    if name == PEERING.name:
        peering_api.WATCH_HEARTBEAT.set_to_current_time()
        _SEEN[namespace] = dict(status)
        _judge(memo.peering_priority)


if PEERING.name is not None:  # without peering there is no such object to watch (and maybe no CRD)
    kopf.index("kopf.dev", "v1", "clusterkopfpeerings" if CLUSTERWIDE else "kopfpeerings")(peering_heartbeat)
