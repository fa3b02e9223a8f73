"""Errors of the local control plane, as types.

Every failure a developer can hit while bringing the dev cluster up or down is a
``DevClusterError`` whose message says what failed, how to fix it when there is a known fix,
and, for a component that died, the end of its log, so that nobody has to go digging first.
"""

from __future__ import annotations

from pathlib import Path

BUILD_FIX = "run `make tools` (hack/build-tools.sh)"


class DevClusterError(Exception):
    """Base class: the local control plane could not be started, checked or stopped."""


class MissingBinaryError(DevClusterError):
    """A binary the control plane needs is not in the bin directory."""

    def __init__(self, binaries: list[str], bindir: Path) -> None:
        self.binaries = binaries
        self.bindir = bindir
        names = ", ".join(binaries)
        super().__init__(f"{names} not found (or not executable) in {bindir}: {BUILD_FIX}")


class ComponentError(DevClusterError):
    """A component exited before it became ready, or did not become ready in time."""

    def __init__(self, component: str, reason: str, log: Path, tail: str, fix: str | None = None) -> None:
        self.component = component
        self.reason = reason
        self.log = log
        self.tail = tail
        lines = [f"{component} {reason}"]
        if fix:
            lines.append(f"  fix: {fix}")
        lines.append(f"  log: {log}, last lines:")
        lines.extend(f"    | {line}" for line in (tail.splitlines() or ["<empty>"]))
        super().__init__("\n".join(lines))


class AddressInUseError(ComponentError):
    """A component could not bind its port: another process took it first (a port race)."""
