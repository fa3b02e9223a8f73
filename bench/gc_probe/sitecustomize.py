"""How much CPU Python's garbage collector takes in an operator a bench starts (issue 18, session 13).

Put this directory on the bench's ``PYTHONPATH``; every ``oncall-operator run`` process it starts
(recognised by its ``--peering`` argument) then writes, every 5 s, its CPU seconds, the objects the
collector tracks, and per generation the collections, the seconds they took and what they freed, to
``$GC_PROBE_DIR/gc-<pid>.txt`` (default ``/tmp``):

    PYTHONPATH=bench/gc_probe python bench/storm.py --sizes 2000 --steady 0
"""

import gc
import os
import sys
import threading
import time

_STATS = {generation: [0, 0.0, 0] for generation in range(3)}
_STARTED = [0.0]


def _measure(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _STARTED[0] = time.perf_counter()
        return
    s = _STATS[info["generation"]]
    s[0] += 1
    s[1] += time.perf_counter() - _STARTED[0]
    s[2] += info.get("collected", 0)


def _write() -> None:
    path = os.path.join(os.environ.get("GC_PROBE_DIR", "/tmp"), f"gc-{os.getpid()}.txt")
    while True:
        time.sleep(5)
        lines = [" ".join(sys.argv)[:120], f"cpu {time.process_time():.2f} s, tracked objects {len(gc.get_objects())}"]
        lines += [f"gen{g}: {n} collections, {t:.3f} s, {c} freed" for g, (n, t, c) in _STATS.items()]
        with open(path, "w") as out:
            out.write("\n".join(lines) + "\n")


if "--peering" in sys.argv:
    gc.callbacks.append(_measure)
    threading.Thread(target=_write, name="gc probe", daemon=True).start()
