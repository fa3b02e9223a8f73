"""The garbage collector as the operator sets it: the start-up objects frozen, cycles still collected unasked."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from oncall_operator.adapters import collector


class Node:
    """A member of a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def tuned() -> Iterator[None]:
    before = gc.get_threshold()
    collector.tune()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_what_exists_at_start_up_is_frozen_and_the_young_generation_waits_longer(tuned: None) -> None:
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (collector.YOUNG, *collector.OLDER)
    assert gc.isenabled()


def test_a_reference_cycle_made_later_is_still_collected_without_being_asked(tuned: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None, "a cycle outlives its names: no reference count reaches zero"
    churn = [[] for _ in range(collector.YOUNG * 2)]  # new containers: a young collection comes due
    del churn
    assert gone() is None, "collected by the collector's own schedule, with no gc.collect()"
