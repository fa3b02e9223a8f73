"""KEP-1623 conditions: set one on a list without losing history or churning timestamps.

``lastTransitionTime`` changes only when the status flips, so ``kubectl get -w`` and alerts
on condition age stay meaningful; reason and message can change freely.
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
from typing import Any

from oncall_operator.api import base

READY = "Ready"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of a check, before it becomes a condition."""

    ok: bool
    reason: str
    message: str


def put(
    conditions: list[base.Condition],
    type_: str,
    status: base.ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> list[base.Condition]:
    """Return ``conditions`` with ``type_`` set; the transition time moves only on a flip."""
    previous = next((c for c in conditions if c.type == type_), None)
    changed = previous is None or previous.status != status
    updated = base.Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return [updated if c.type == type_ else c for c in conditions] if previous else [*conditions, updated]


def ready(
    conditions: list[base.Condition], verdict: Verdict, generation: int | None, now: dt.datetime
) -> list[base.Condition]:
    status = base.ConditionStatus.TRUE if verdict.ok else base.ConditionStatus.FALSE
    return put(conditions, READY, status, verdict.reason, verdict.message, generation, now)


def same(a: list[base.Condition], b: list[base.Condition]) -> bool:
    """Equal but for transition times: whether writing ``b`` over ``a`` would tell anyone anything."""

    def key(c: base.Condition) -> tuple[str, str, str, str, int | None]:
        return (c.type, c.status.value, c.reason, c.message, c.observed_generation)

    return sorted(map(key, a), key=str) == sorted(map(key, b), key=str)


def ready_unchanged(status: cabc.Mapping[str, Any], verdict: Verdict, generation: int | None) -> bool:
    """Whether an object's status as the API server sent it already says ``verdict`` for ``generation``.

    The fast path of a Ready check on every event of an object: no model is built and nothing is
    written when this holds (what :func:`ready` and :func:`same` would conclude, on the raw dict).
    """
    if status.get("observedGeneration") != generation:
        return False
    found = next((c for c in status.get("conditions") or () if c.get("type") == READY), None)
    want = (base.ConditionStatus.TRUE if verdict.ok else base.ConditionStatus.FALSE).value
    return found is not None and (
        found.get("status"),
        found.get("reason"),
        found.get("message", ""),
        found.get("observedGeneration"),
    ) == (want, verdict.reason, verdict.message, generation)
