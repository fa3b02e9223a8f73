"""The operator's count of open Incidents per namespace, and the cap's two refusals: the intake's and a person's.

Shared by the Incident events (:mod:`.incident_events` feeds the count), the intake
(:mod:`.alerts`: 429 before a create) and the opening of a person's Incident (:mod:`.opening`:
``Ready=False``, not opened). The rule and its words are :mod:`oncall_operator.domain.incident_cap`.
"""

import collections.abc as cabc
import datetime as dt
import sys
from typing import Any

from oncall_operator.api import incident
from oncall_operator.domain import conditions, incident_cap, lifecycle
from oncall_operator.executor import config

OPEN = incident_cap.OpenCount()
RETRY_SECONDS = 60.0
"""What the intake's 429 tells Alertmanager to wait (it sends again at its group_interval anyway)."""


def see(body: cabc.Mapping[str, Any], deleted: bool = False) -> None:
    """An Incident event: count it while it is open."""
    meta = body["metadata"]
    is_open = not deleted and incident_cap.counts_as_open(body.get("status") or {})
    OPEN.see(sys.intern(meta["namespace"]), sys.intern(meta["name"]), is_open)


def created(namespace: str, name: str) -> None:
    """The intake opened it: counted now, before its watch event comes (a storm's creates race their events)."""
    OPEN.see(namespace, name, True)


def refusal(namespace: str, cap: int | None = None) -> str | None:
    """Why ``namespace`` may open no new Incident now (the cap is reached), or None."""
    limit = config.CONFIG.max_open_incidents_per_namespace if cap is None else cap
    return incident_cap.refusal(OPEN.count(namespace), limit, namespace)


def held(current: incident.Incident, namespace: str, now: dt.datetime) -> incident.IncidentStatus | None:
    """A person's new Incident over the cap: its status, unopened with Ready=False; None when under the cap."""
    why = refusal(namespace)
    if why is None:
        return None
    verdict = conditions.Verdict(
        False, incident_cap.REASON, f"not opened: {why}; it opens at its next change below the cap"
    )
    status = current.status or incident.IncidentStatus()
    return lifecycle.with_ready(status, verdict, current.metadata.generation, now)
