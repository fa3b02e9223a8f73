"""Timestamps as the API server serves them in raw objects (RFC 3339, ``Z``), read where no model is built.

The hot paths read a few times from raw bodies (every Incident event: the gauge, the escalation's
hint) rather than validating whole objects; one reader keeps their rule the same: a missing or
malformed value is None, never an exception on a watch event.
"""

import datetime as dt


def parse(value: object) -> dt.datetime | None:
    """``value`` as an aware datetime; None when it is empty or not a timestamp."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
