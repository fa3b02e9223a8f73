"""Duration strings such as ``5m``, ``1h30m`` or ``7d``, as the handbook writes them.

Kubernetes' own ``metav1.Duration`` has no days or weeks, and an on-call tool speaks in both
(turn lengths of one week, reviews in two days), so the project parses its own format. The
same regular expression is the CRD's OpenAPI ``pattern``, so the API server rejects a bad
string at ``kubectl apply`` and this parser never sees one from a stored object.
"""

import datetime as dt
import re

UNITS = {
    "s": dt.timedelta(seconds=1),
    "m": dt.timedelta(minutes=1),
    "h": dt.timedelta(hours=1),
    "d": dt.timedelta(days=1),
    "w": dt.timedelta(weeks=1),
}
PATTERN = r"^(0|([0-9]+(s|m|h|d|w))+)$"
_PART = re.compile(r"([0-9]+)(s|m|h|d|w)")
_WHOLE = re.compile(PATTERN)


class DurationError(ValueError):
    """A string that is not a duration like ``5m``, ``1h30m`` or ``7d``."""


def parse(text: str) -> dt.timedelta:
    """Return the timedelta a duration string stands for; raise DurationError otherwise."""
    if not _WHOLE.match(text):
        raise DurationError(f"{text!r} is not a duration like 5m, 1h30m or 7d")
    total = dt.timedelta()
    for amount, unit in _PART.findall(text):
        total += int(amount) * UNITS[unit]
    return total


def render(delta: dt.timedelta) -> str:
    """Write a timedelta as the shortest duration string that parses back to it (whole seconds)."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(UNITS[unit].total_seconds())
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
