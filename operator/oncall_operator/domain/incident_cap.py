"""A hard cap on the open Incidents of one namespace, so no tenant can fill etcd or the operator's memory.

The new-Incident rate limit (:mod:`.ratelimit`) slows a storm down, but a storm that lasts
opens Incidents without end. Past the cap a namespace opens no new Incident until some are
resolved: the intake answers 429 naming the cap (Alertmanager sends the group again at its next
``group_interval``), and an Incident a person made stays unopened with ``Ready=False``
(:data:`REASON`). Updates and resolutions of open Incidents are never refused.

The count is the operator's own, in memory (:class:`OpenCount`, fed by the Incident watch and by
the intake's creates), so a request costs no list. Pure: no I/O.
"""

import collections
import collections.abc as cabc
from typing import Any

from oncall_operator.api import incident

REASON = "TooManyOpenIncidents"
Key = tuple[str, str]


def counts_as_open(status: cabc.Mapping[str, Any]) -> bool:
    """Opened and not resolved: what the cap counts."""
    phase = status.get("phase")
    return bool(phase) and phase != incident.Phase.RESOLVED.value


class OpenCount:
    """The open Incidents of each namespace, by (namespace, name)."""

    def __init__(self) -> None:
        self._open: set[Key] = set()
        self._per_namespace: collections.Counter[str] = collections.Counter()

    def see(self, namespace: str, name: str, is_open: bool) -> None:
        key = (namespace, name)
        if is_open and key not in self._open:
            self._open.add(key)
            self._per_namespace[namespace] += 1
        elif not is_open and key in self._open:
            self._open.discard(key)
            self._per_namespace[namespace] -= 1
            if not self._per_namespace[namespace]:
                del self._per_namespace[namespace]

    def count(self, namespace: str) -> int:
        return self._per_namespace[namespace]


def refusal(count: int, cap: int, namespace: str) -> str | None:
    """Why ``namespace`` may open no new Incident now, or None; a cap of 0 means no cap."""
    if cap <= 0 or count < cap:
        return None
    return (
        f"namespace {namespace} has reached the cap of {cap} open Incidents per namespace "
        "(ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE): resolve some first"
    )
