"""What a real node changes on the host, recorded before it starts and put back after it stops.

The kubelet and containerd write outside their configured directories whatever their flags
say: the kubelet sets ``vm.overcommit_memory``, ``kernel.panic`` and ``kernel.panic_on_oops``
and creates ``/var/lib/kubelet/device-plugins`` and ``/var/log/containers``; containerd's shims
create ``/run/containerd/s``; CNI keeps ``/var/lib/cni``; ``ip netns add`` creates and mounts
``/run/netns``. ``take`` records the sysctls' values and which of those paths did not exist;
``restore`` writes the values back and removes (unmounting first) only what the node created;
``differences`` is what the tests assert to be empty after tear-down.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/var/lib/containerd",
    "/opt/containerd",
    "/var/lib/cni",
    "/etc/cni",
    "/opt/cni",
    "/run/netns",
    "/usr/libexec/kubernetes",
)
SYS = Path("/proc/sys")


@dataclass(frozen=True)
class HostSnapshot:
    """Sysctl values and the paths that did not exist, before the node started."""

    sysctls: dict[str, str] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)


def take() -> HostSnapshot:
    values = {name: (SYS / name).read_text().strip() for name in SYSCTLS if (SYS / name).exists()}
    return HostSnapshot(values, [p for p in PATHS if not _exists(Path(p))])


def restore(snap: HostSnapshot) -> list[str]:
    """Put the host back as ``snap`` found it; returns what could not be restored."""
    problems: list[str] = []
    for name, value in snap.sysctls.items():
        try:
            if (SYS / name).read_text().strip() != value:
                (SYS / name).write_text(value)
        except OSError as err:
            problems.append(f"sysctl {name}: {err}")
    for raw in snap.absent:
        path = Path(raw)
        if not _exists(path):
            continue
        unmount_under(path)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as err:
            problems.append(f"{path}: {err}")
    return problems


def differences(snap: HostSnapshot) -> list[str]:
    """What differs from ``snap``: a changed sysctl, a path that exists now and did not before."""
    found = [
        f"sysctl {n} is {(SYS / n).read_text().strip()}, was {v}"
        for n, v in snap.sysctls.items()
        if (SYS / n).read_text().strip() != v
    ]
    return found + [f"{p} was created and is still there" for p in snap.absent if _exists(Path(p))]


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` (from /proc/self/mountinfo), deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == str(root) or point.startswith(prefix):
            points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def unmount_under(root: Path) -> list[Path]:
    """Unmount everything at or below ``root``, deepest first (lazily if busy); returns them."""
    points = mounts_under(root)
    for point in points:
        proc = subprocess.run(["umount", str(point)], capture_output=True, check=False)
        if proc.returncode != 0:
            with contextlib.suppress(OSError):
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    return points


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040...)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
