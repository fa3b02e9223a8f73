"""Kopf registrations, and nothing else: each handler parses, calls the domain, writes status.

Importing this package registers every handler with Kopf's default registry; ``cli run``
does that before ``kopf.run``.
"""

from oncall_operator.handlers import (
    actions,
    board,
    escalation,
    incidents,
    intake,
    metrics,
    objects,
    peering,
    pods,
    remediation,
    review,
    settings,
)

# isort: split
# after ``pods``: start-up handlers run in the order they were registered, and this one starts
# the caches inside the OOM state that ``pods`` sets up (it would otherwise wait for it)
from oncall_operator.handlers import caches

__all__ = [
    "actions",
    "board",
    "caches",
    "escalation",
    "incidents",
    "intake",
    "metrics",
    "objects",
    "peering",
    "pods",
    "remediation",
    "review",
    "settings",
]
