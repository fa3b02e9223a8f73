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


def _records(peers: cabc.Mapping[str, Any]) -> cabc.Iterator[tuple[str, int, dt.datetime]]:
    """(identity, priority, deadline) of each well-formed record; a malformed one is left out (dead).

    Kopf writes ``lastseen`` as an ISO time and ``lifetime`` in seconds; a peer is dead once its
    deadline, ``lastseen + lifetime``, has passed.
    """
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
        yield identity, priority, seen + lifetime


def live(peers: cabc.Mapping[str, Any], now: dt.datetime) -> dict[str, int]:
    """Identity -> priority of the peers whose keep-alive has not expired at ``now`` (a malformed record is dead)."""
    return {identity: priority for identity, priority, deadline in _records(peers) if deadline > now}


def blocked_until(peers: cabc.Mapping[str, Any], now: dt.datetime, priority: int) -> dt.datetime | None:
    """When the live peers that keep the replica with ``priority`` paused expire, unless they keep alive.

    Those are the other live records with a priority at least as high (a tie at the top pauses
    both). None when none does. A standby reads the peering again at this moment rather than at
    its next poll: a leader that stopped keeping alive (its node gone silent) is replaced as soon
    as its record expires (issue 18: the takeover time is the lifetime plus what follows it).
    """
    own = False
    deadlines = []
    for _, other, deadline in _records(peers):
        if deadline <= now or other < priority:
            continue
        if other == priority and not own:
            own = True  # its own record (the first at its priority); a second one is a tie
            continue
        deadlines.append(deadline)
    return max(deadlines, default=None)


def leads(peers: cabc.Mapping[str, Any], now: dt.datetime, priority: int) -> bool:
    """Whether the replica with ``priority`` is the one that acts (its own record among the live)."""
    priorities = list(live(peers, now).values())
    return priorities.count(priority) == 1 and max(priorities) == priority
