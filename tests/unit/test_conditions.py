"""KEP-1623 conditions: the transition time moves only when the status flips."""

import datetime as dt
from typing import Any

import pytest

from oncall_operator.api import base
from oncall_operator.domain import conditions

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
OK = conditions.Verdict(True, "Valid", "fine")
BAD = conditions.Verdict(False, "ScheduleNotFound", "spec.levels[0]: missing")


def test_first_condition_is_added() -> None:
    [c] = conditions.ready([], OK, 3, T0)
    assert (c.type, c.status, c.reason, c.observed_generation, c.last_transition_time) == (
        "Ready",
        base.ConditionStatus.TRUE,
        "Valid",
        3,
        T0,
    )


def test_same_status_keeps_transition_time_but_takes_new_message() -> None:
    first = conditions.ready([], BAD, 1, T0)
    [c] = conditions.ready(first, conditions.Verdict(False, "RoleNotFound", "other"), 2, T1)
    assert c.last_transition_time == T0 and c.reason == "RoleNotFound" and c.observed_generation == 2


def test_flip_moves_transition_time_and_keeps_other_types() -> None:
    other = base.Condition(type="Degraded", status=base.ConditionStatus.FALSE, reason="Fine", last_transition_time=T0)
    after = conditions.ready(conditions.ready([other], BAD, 1, T0), OK, 1, T1)
    assert [c.type for c in after] == ["Degraded", "Ready"]
    assert after[1].last_transition_time == T1 and after[1].status == base.ConditionStatus.TRUE


def test_same_ignores_only_transition_times() -> None:
    a = conditions.ready([], OK, 1, T0)
    assert conditions.same(a, conditions.ready([], OK, 1, T1))
    assert not conditions.same(a, conditions.ready([], OK, 2, T0))
    assert not conditions.same(a, conditions.ready([], BAD, 1, T0))


RESOLVED = conditions.Verdict(True, "Resolved", "every reference resolves")
READY_T0 = {"type": "Ready", "status": "True", "reason": "Resolved", "message": "every reference resolves"}


@pytest.mark.parametrize(
    ("status", "verdict", "generation", "unchanged"),
    [
        ({"observedGeneration": 2, "conditions": [{**READY_T0, "observedGeneration": 2}]}, RESOLVED, 2, True),
        ({"observedGeneration": 1, "conditions": [{**READY_T0, "observedGeneration": 1}]}, RESOLVED, 2, False),
        ({"observedGeneration": 2, "conditions": [{**READY_T0, "observedGeneration": 1}]}, RESOLVED, 2, False),
        (
            {"observedGeneration": 2, "conditions": [{**READY_T0, "observedGeneration": 2, "status": "False"}]},
            RESOLVED,
            2,
            False,
        ),
        (
            {"observedGeneration": 2, "conditions": [{**READY_T0, "observedGeneration": 2, "message": "x"}]},
            RESOLVED,
            2,
            False,
        ),
        (
            {"observedGeneration": 2, "conditions": [{**READY_T0, "observedGeneration": 2, "reason": "Old"}]},
            RESOLVED,
            2,
            False,
        ),
        (
            {"observedGeneration": 2, "conditions": [{**READY_T0, "type": "NeedsHuman", "observedGeneration": 2}]},
            RESOLVED,
            2,
            False,
        ),
        ({"observedGeneration": 2}, RESOLVED, 2, False),
        ({}, RESOLVED, None, False),
        (
            {"observedGeneration": 2, "conditions": [{**READY_T0, "observedGeneration": 2, "status": "False"}]},
            conditions.Verdict(False, "Resolved", "every reference resolves"),
            2,
            True,
        ),
    ],
)
def test_ready_unchanged_agrees_with_what_a_write_would_change(
    status: dict[str, Any], verdict: conditions.Verdict, generation: int | None, unchanged: bool
) -> None:
    assert conditions.ready_unchanged(status, verdict, generation) is unchanged
    if unchanged:  # the slow path would write nothing either
        parsed = [base.Condition.model_validate({**c, "lastTransitionTime": T0}) for c in status["conditions"]]
        assert conditions.same(parsed, conditions.ready(parsed, verdict, generation, T0))
