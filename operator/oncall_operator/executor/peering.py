"""Which replica acts: Kopf's peering rule, observed, so the operator's own loops and metrics know.

``oncall-operator run --peering NAME`` (the chart runs two replicas so) joins Kopf's peering:
every replica keeps itself alive in the peering object NAME, and Kopf pauses each replica that
sees a live peer with a higher priority: its watches close. The CLI gives the replica that
started first the highest priority (:mod:`oncall_operator.domain.peering`). A standby resumes
when the leader's record expires: after a graceful exit at once (Kopf removes its record),
after a crash when the lifetime has passed, which bounds the takeover time. The observer reads
the peering again just after the leader's record expires (not at its next poll), and the loops
waiting for this replica to act wake at once (:func:`peering.changed`). The state a standby
needs to resume is in each Incident's status, and every send is claimed there first, so a
takeover neither repeats nor skips a notification.

Kopf keeps its pause to itself, so :class:`Observer` judges by Kopf's rule from the peering
object (polled, and from the watch while active) and sets :func:`adapters.peering.set_acting`,
which the pod watch and the escalation loop ask, and the metric ``oncall_operator_active``.
"""

import asyncio
import collections.abc as cabc
import datetime as dt
import logging
from typing import Any

from oncall_operator.adapters import kube, tasks
from oncall_operator.adapters import peering as peering_api
from oncall_operator.domain import peering
from oncall_operator.executor import config

log = logging.getLogger(__name__)

EXPIRY_MARGIN = 0.1
"""Seconds after a blocking peer's expiry before the peering is read again."""


def scopes(cfg: config.Config) -> tuple[str | None, ...]:
    """Where Kopf keeps the peering: cluster-wide, or a KopfPeering per watched namespace (those a
    glob matches are known only from the watch, so only while this replica acts)."""
    if cfg.clusterwide:
        return (None,)
    return tuple(ns for ns in cfg.watch_namespaces if not set(ns) & set("*?[!"))


class Observer:
    """Polls the peering objects every few seconds and judges whether this replica acts."""

    def __init__(self, k: kube.Kube, cfg: config.Config, priority: int) -> None:
        self.kube, self.cfg, self.priority = k, cfg, priority
        self.scopes = scopes(cfg)
        self.seen: dict[str | None, Any] = {}
        """The latest status of each peering object, from the poll or from the watch (when active)."""
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="peering observer")

    async def stop(self) -> None:
        await tasks.cancel(self.task)

    async def _run(self) -> None:
        name = self.cfg.peering
        assert name is not None
        interval = max(1.0, min(5.0, self.cfg.peering_lifetime / 3))
        while True:
            try:
                found = await asyncio.gather(
                    *(asyncio.to_thread(peering_api.status, self.kube, name, ns) for ns in self.scopes)
                )
                for scope, status in zip(self.scopes, found, strict=True):
                    self.seen[scope] = status or {}
                self.judge()
            except Exception as error:  # a metric must never stop the operator; the next round retries
                log.warning("peering %r could not be read: %s", name, error)
            await asyncio.sleep(self.next_read(interval, dt.datetime.now(dt.UTC)))

    def next_read(self, interval: float, now: dt.datetime) -> float:
        """Seconds to the next read: the poll's interval, or less when the peers that keep this replica
        paused expire sooner (read just after, so that a takeover does not wait for the next poll)."""
        until = [peering.blocked_until(self.seen.get(scope) or {}, now, self.priority) for scope in self.seen]
        soonest = min((u for u in until if u is not None), default=None)
        if soonest is None:
            return interval
        return max(EXPIRY_MARGIN, min(interval, (soonest - now).total_seconds() + EXPIRY_MARGIN))

    def heard(self, namespace: str | None, status: cabc.Mapping[str, Any]) -> None:
        """A keep-alive arrived through the watch (only while this replica acts): judge at once."""
        peering_api.WATCH_HEARTBEAT.set_to_current_time()
        self.seen[namespace] = dict(status)
        self.judge()

    def judge(self) -> None:
        now = dt.datetime.now(dt.UTC)
        records = [self.seen.get(scope) or {} for scope in dict.fromkeys([*self.scopes, *self.seen])]
        peering_api.set_acting(bool(records) and all(peering.leads(r, now, self.priority) for r in records))
        peering_api.PEERS.set(min((len(peering.live(r, now)) for r in records), default=0))
        if records:
            peering_api.set_live(frozenset(i for r in records for i in peering.live(r, now)))
