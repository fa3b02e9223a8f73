"""The peering objects Kopf's replicas keep alive in, read for the leadership metric; and its metrics.

Kopf reads and writes these objects itself (``kopf.dev/v1`` ClusterKopfPeering when the
operator watches the whole cluster, a KopfPeering per watched namespace otherwise); the
operator only reads them, to export which replica acts. The metrics are declared here, next to
the only code that sets them, and served from the default registry like every other metric.
"""

import asyncio
from typing import Any

import kubernetes
import prometheus_client

from oncall_operator.adapters import kube, metrics

GROUP, VERSION = "kopf.dev", "v1"

ACTIVE = prometheus_client.Gauge(
    "oncall_operator_active",
    "1 when this replica is the one acting (Kopf peering: highest live priority, or standalone), else 0.",
    registry=metrics.REGISTRY,
)
PEERS = prometheus_client.Gauge(
    "oncall_operator_peers",
    "Replicas alive in the peering object (their keep-alive not expired), as this replica sees it.",
    registry=metrics.REGISTRY,
)
WATCH_HEARTBEAT = prometheus_client.Gauge(
    "oncall_operator_watch_heartbeat_timestamp_seconds",
    "When this replica's watch last delivered an event of the peering object, which every replica's "
    "keep-alive updates every few seconds: a stale value on the active replica means a stalled watch.",
    registry=metrics.REGISTRY,
)

_acting = False
_term = 0


_waiters: list[asyncio.Future[None]] = []


def set_acting(acting: bool) -> None:
    """Record whether this replica acts; the gauge and :func:`acting` always agree. A change wakes
    every :func:`changed` waiting."""
    global _acting, _term
    if acting and not _acting:
        _term += 1
    changed_now = acting != _acting
    _acting = acting
    ACTIVE.set(1 if acting else 0)
    if changed_now:
        for waiter in _waiters:
            if not waiter.done():
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
        _waiters.clear()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def changed(timeout: float) -> None:
    """Return when :func:`acting` changes, or after ``timeout`` seconds, whichever is first: a loop that
    waits for this replica to act starts as soon as it does, not at its next poll."""
    waiter = asyncio.get_running_loop().create_future()
    _waiters.append(waiter)
    try:
        await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        pass
    finally:
        if waiter in _waiters:
            _waiters.remove(waiter)


def acting() -> bool:
    """Whether this replica acts now: the loops the operator runs itself (not Kopf's) ask this."""
    return _acting


def term() -> int:
    """How many times this replica has started to act: what was gathered in an earlier term may be stale
    (while it stood by, Kopf's watches were stopped and the acting replica wrote on)."""
    return _term


_live: frozenset[str] | None = None


def set_live(identities: frozenset[str]) -> None:
    """Record the identities of the replicas alive in the peering objects (Kopf's: ``POD_ID``)."""
    global _live
    _live = identities


def live() -> frozenset[str] | None:
    """The replicas alive as last seen; None when not known (standalone, or not read yet)."""
    return _live


def status(k: kube.Kube, name: str, namespace: str | None) -> dict[str, Any] | None:
    """The peering object's ``status`` (identity -> keep-alive record), or None when it does not exist."""
    try:
        if namespace is None:
            obj = k.custom.get_cluster_custom_object(
                GROUP, VERSION, "clusterkopfpeerings", name, _request_timeout=kube.TIMEOUT
            )
        else:
            obj = k.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "kopfpeerings", name, _request_timeout=kube.TIMEOUT
            )
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(obj.get("status") or {})
