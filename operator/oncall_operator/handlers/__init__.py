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

__all__ = [
    "actions",
    "board",
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
