"""A token bucket per key (a namespace): how many new Incidents an alert storm may open, and when to come back.

One namespace's flood of distinct alert groups (a misconfigured rule, a hostile sender with the
token) must not fill etcd with Incidents nor starve the other namespaces. Each namespace may
open ``burst`` Incidents at once and ``per_minute`` after that; a refused one is told how long
to wait (HTTP 429 with Retry-After). Updates of existing Incidents are never limited here.
Pure: the caller passes the time (monotonic seconds).
"""

import dataclasses

KEYS_MAX = 10_000
"""Buckets kept; the fullest (least useful) are dropped first when there are more."""


@dataclasses.dataclass
class Buckets:
    per_minute: float
    burst: float
    _level: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    """key -> (tokens, when counted)."""

    def take(self, key: str, now: float) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is there."""
        tokens, then = self._level.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.per_minute / 60.0)
        if tokens >= 1.0:
            self._level[key] = (tokens - 1.0, now)
            self._trim()
            return 0.0
        self._level[key] = (tokens, now)
        return (1.0 - tokens) * 60.0 / self.per_minute

    def _trim(self) -> None:
        if len(self._level) > KEYS_MAX:
            fullest = sorted(self._level, key=lambda k: self._level[k][0], reverse=True)
            for key in fullest[: len(self._level) - KEYS_MAX]:
                del self._level[key]
