"""A CPU hog beside a bench (issue 18): figures for an operator that does not have the machine to itself.

``--hog N`` in ``bench/storm.py`` starts N processes that each keep one core busy (a Python loop
that never sleeps, at normal priority) for the whole run, and stops them at its end. On this 2-core
machine ``--hog 1`` leaves the operator, the API server and etcd one core between them. The figures
say it: the results carry ``hog`` in their settings. ``python bench/hog.py N COMMAND...`` runs any
other bench beside N busy cores.
"""

import contextlib
import os
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


def main(argv: list[str]) -> int:
    """``python bench/hog.py N COMMAND...``: run any bench beside N busy cores (``BENCH_HOG=N`` in its environment)."""
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python bench/hog.py N COMMAND [ARGS...]", file=sys.stderr)
        return 2
    with running(int(argv[0])):
        return subprocess.run(argv[1:], env={**os.environ, "BENCH_HOG": argv[0]}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
