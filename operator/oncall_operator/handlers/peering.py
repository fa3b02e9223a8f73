"""High availability: the peering object's keep-alives, heard through Kopf's watch.

The leadership itself is observed by :class:`oncall_operator.executor.peering.Observer`,
which polls; this index makes the verdict prompt while the replica acts (every keep-alive,
ours included, is an event) and feeds the watch heartbeat metric the chart's alerts read.
"""

from typing import Any

import kopf

from oncall_operator.executor import config


def peering_heartbeat(name: str, namespace: str | None, status: kopf.Status, memo: Any, **_: Any) -> None:
    """An index that stores nothing: Kopf calls indexers on every event, quietly (no log per call)."""
    observer = getattr(getattr(memo, "running", None), "observer", None)
    if name == config.CONFIG.peering and observer is not None:
        observer.heard(namespace, status)


if config.CONFIG.peering is not None:  # without peering there is no such object to watch (and maybe no CRD)
    kopf.index("kopf.dev", "v1", "clusterkopfpeerings" if config.CONFIG.clusterwide else "kopfpeerings")(
        peering_heartbeat
    )
