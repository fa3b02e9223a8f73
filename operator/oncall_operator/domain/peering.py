"""Which of several replicas acts: Kopf's peering rule as a pure function, and seniority priorities.

The chart runs two replicas with Kopf peering: each keeps itself alive in one peering object
(``status.<identity> = {priority, lifetime, lastseen}``), and Kopf pauses every replica that
sees a live peer with a higher priority, and *all* replicas when the highest priority is shared.
So priorities must be distinct, and it is better when a replica that restarts does not take the
lead back from the one that covered for it (a needless pause and resume of every watch). A
priority that falls with the start time does both: the longest-running replica leads, and a
random jitter separates two replicas started in the same millisecond.

:func:`leads` answers "does this replica act now?" from the peering object, by the rule Kopf
applies, so the operator can export it as a metric (an alert fires when nobody, or more than
one, acts); Kopf keeps its own answer to itself.
"""

import collections.abc as cabc
import datetime as dt
from typing import Any

HORIZON_MS = 2**42
"""Start times are counted back from here (about the year 2109), so earlier starts rank higher."""
JITTER = 1024
"""Random tie-breakers per millisecond; priorities stay below 2**52, exact as JSON numbers."""


def seniority_priority(started_ms: int, jitter: int) -> int:
    """A Kopf priority that is higher the earlier the process started (``jitter`` in [0, JITTER))."""
    if not 0 <= jitter < JITTER:
        raise ValueError(f"jitter must be in [0, {JITTER}), got {jitter}")
    return (HORIZON_MS - started_ms) * JITTER + jitter


def live(peers: cabc.Mapping[str, Any], now: dt.datetime) -> dict[str, int]:
    """Identity -> priority of the peers whose keep-alive has not expired at ``now``.

    Kopf writes ``lastseen`` as an ISO time and ``lifetime`` in seconds; a peer is dead once
    ``lastseen + lifetime`` has passed, and a malformed record counts as dead.
    """
    found = {}
    for identity, info in peers.items():
        if not isinstance(info, cabc.Mapping):
            continue
        try:
            seen = dt.datetime.fromisoformat(str(info["lastseen"]))
            lifetime = dt.timedelta(seconds=int(info.get("lifetime", 60)))
            priority = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=dt.UTC)
        if seen + lifetime > now:
            found[identity] = priority
    return found


def leads(peers: cabc.Mapping[str, Any], now: dt.datetime, priority: int) -> bool:
    """Whether the replica with ``priority`` is the one that acts (its own record among the live)."""
    priorities = list(live(peers, now).values())
    return priorities.count(priority) == 1 and max(priorities) == priority
