"""The node's cgroups: every pod of the local node lives under one cgroup of our own, ``ROOT``.

The kubelet's ``cgroupRoot`` points at it, so its ``kubepods`` tree (and every container's
cgroup below) is created inside, and tear-down has one place to empty and remove in each
hierarchy: kill what still runs there, then remove the directories, deepest first. The
kubelet refuses a cgroup root that does not exist, so ``create`` makes it (copying the cpuset's
cpus and mems from the parent on cgroup v1, or a new cpuset could hold no task).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = "oncall-node"
FS = Path("/sys/fs/cgroup")


def is_v2() -> bool:
    return (FS / "cgroup.controllers").exists()


def has_memory_controller() -> bool:
    """Whether the kernel can hold a container to a memory limit (the OOM killer's trigger)."""
    if is_v2():
        return "memory" in (FS / "cgroup.controllers").read_text().split()
    return (FS / "memory" / "memory.limit_in_bytes").exists()


def hierarchies() -> list[Path]:
    """The root directory of each mounted hierarchy (one for v2), each once."""
    if is_v2():
        return [FS]
    seen: dict[Path, Path] = {}
    for entry in sorted(FS.iterdir()):
        real = entry.resolve()
        if (real / "cgroup.procs").exists() and real not in seen:
            seen[real] = entry
    return list(seen.values())


def create() -> None:
    for top in hierarchies():
        mine = top / ROOT
        mine.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (top / name).exists() and not (mine / name).read_text().strip():
                (mine / name).write_text((top / name).read_text())
    if is_v2():
        wanted = set((FS / "cgroup.subtree_control").read_text().split())
        (FS / ROOT / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))


def remove(timeout: float = 20.0) -> list[str]:
    """Kill every process under ``ROOT`` and remove its cgroups; returns what is left."""
    deadline = time.monotonic() + timeout
    for top in hierarchies():
        mine = top / ROOT
        if not mine.exists():
            continue
        below = sorted((p for p in mine.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for cg in [*below, mine]:  # deepest first: a cgroup with children cannot be removed
            _empty_and_remove(cg, deadline)
    return leftovers()


def leftovers() -> list[str]:
    return [str(top / ROOT) for top in hierarchies() if (top / ROOT).exists()]


def _empty_and_remove(cg: Path, deadline: float) -> None:
    while True:
        pids = _procs(cg)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not pids:
            with contextlib.suppress(OSError):
                cg.rmdir()
            if not cg.exists() or time.monotonic() >= deadline:
                return
        elif time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def _procs(cg: Path) -> list[int]:
    try:
        return [int(x) for x in (cg / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []
