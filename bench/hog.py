"""A CPU hog beside a bench (issue 18): figures for an operator that does not have the machine to itself.

``--hog N`` in ``bench/storm.py`` and ``bench/cluster_scale.py`` starts N processes that each keep one
core busy (a Python loop that never sleeps, at normal priority) for the whole run, and stops them at
its end. On this 2-core machine ``--hog 1`` leaves the operator, the API server and etcd one core
between them. The figures say it: the results carry ``hog`` in their settings.
"""

import contextlib
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def running(cores: int) -> Iterator[list[int]]:
    """``cores`` busy processes while the block runs; their pids."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, cores))]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
