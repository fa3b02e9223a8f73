"""Process plumbing: free ports, process identity, group teardown and log tails.

Each component runs in its own session (so its own process group), which lets a later,
unrelated process (``dev-cluster down``) stop it and anything it forked with one signal.
A pid alone is not an identity (pids are reused), so a process is recorded as pid plus its
start time in clock ticks from ``/proc/<pid>/stat``; only a match is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from .errors import DevClusterError

PROC = Path("/proc")


class PortPicker:
    """Hands out free loopback ports, never the same one twice in a run."""

    def __init__(self) -> None:
        self._given: set[int] = set()

    def __call__(self) -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in self._given:
                self._given.add(port)
                return port


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such process."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields 3.. (state, ppid, pgrp, ...)


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22), or None if it is gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, ticks: int | None) -> bool:
    """True if ``pid`` runs, is not a zombie and (when ``ticks`` is known) is the same process."""
    if not PROC.is_dir():  # not Linux: the best available check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == ticks


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    if not PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def stop_groups(pgids: list[int], grace: float) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds, SIGKILL what is left, verify."""
    _signal_all(pgids, signal.SIGTERM)
    if _wait_empty(pgids, grace):
        return
    _signal_all(pgids, signal.SIGKILL)
    if not _wait_empty(pgids, 5.0):
        left = sorted(p for g in pgids for p in group_members(g))
        raise DevClusterError(f"processes {left} survived SIGKILL; stop them by hand")


def _signal_all(pgids: list[int], sig: signal.Signals) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)


def _wait_empty(pgids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not any(group_members(g) for g in pgids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def log_tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - 64 * 1024))
            data = f.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
