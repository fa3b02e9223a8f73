"""Python's cyclic garbage collector, set for a long-running operator that makes many short-lived objects.

Issue 18 measured it (``gc.callbacks`` in the leader of ``bench/storm.py --sizes 2000``): the
collector took a fifth of the operator's CPU in an alert storm, 6.7 of 32 s. The default
thresholds (700, 10, 10) start a young collection for every 700 new container objects, and a
storm's JSON bodies, models and requests are nearly all freed by their reference counts soon
after; the collector walks them for nothing. And every full collection walked the ~170,000
objects of the imported modules, Kopf's registry and pydantic's schemas, which live as long as
the process: 150 ms each.

:func:`tune` moves what exists at start-up (the imported code) out of the collector's reach
(``gc.freeze``, as CPython's documentation advises for a process that forks or lives long), and
lets the young generation grow to :data:`YOUNG` objects before it is collected. Reference cycles
are still collected, later; the bench's RSS figures say what that costs.
"""

import gc

YOUNG = 50_000
"""New container objects (allocations minus frees) before a young collection; CPython's default is 700."""
OLDER = (20, 20)
"""Young collections per middle one, middle ones per full one (CPython's: 10, 10)."""


def tune() -> None:
    """Freeze what exists now (call it once the operator's code is imported) and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, *OLDER)
