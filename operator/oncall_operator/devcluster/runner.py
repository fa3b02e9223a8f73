"""Start one component: free ports, its own session, a log file, a deadline, port-race retries.

Ports are picked by binding port 0 and closing the socket, so another process can take a port
before the component binds it. Like envtest, the cure is to notice "address already in use" in
the component's own log and try again with new ports, a bounded number of times.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BUILD_FIX, AddressInUseError, ComponentError
from .procs import log_tail, start_ticks, stop_groups

ADDRESS_IN_USE = "address already in use"
ATTEMPTS = 3

Ports = Mapping[str, int]
Probe = Callable[[Ports], bool]


@dataclass(frozen=True)
class ComponentSpec:
    """How to run one component and how to tell it is ready."""

    name: str
    binary: Path
    port_names: tuple[str, ...]
    args: Callable[[Ports], list[str]]
    ready: Probe
    timeout: float
    fix: str | None = None
    prefix: tuple[str, ...] = ()
    """Run through this first (e.g. ``nsenter --net=...``, which execs the binary in place)."""


@dataclass
class Running:
    """A component that became ready."""

    name: str
    popen: subprocess.Popen[bytes]
    ports: dict[str, int]
    log: Path
    argv: list[str]
    ticks: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid


def child_env() -> dict[str, str]:
    """The environment for components: ours, minus etcd's ETCD_* flag overrides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


def launch(
    spec: ComponentSpec,
    logdir: Path,
    pick_port: Callable[[], int],
    *,
    attempts: int = ATTEMPTS,
    poll: float = 0.1,
) -> Running:
    """Start ``spec`` and wait until it is ready, retrying with new ports on a port race."""
    log = logdir / f"{spec.name}.log"
    log.write_bytes(b"")
    last: AddressInUseError | None = None
    for attempt in range(1, attempts + 1):
        ports = {name: pick_port() for name in spec.port_names}
        argv = [*spec.prefix, str(spec.binary), *spec.args(ports)]
        with log.open("ab") as out:
            out.write(f"=== attempt {attempt}/{attempts}: {shlex.join(argv)}\n".encode())
            out.flush()
            offset = out.tell()
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own session and process group; outlives us
                    env=child_env(),
                )
            except OSError as err:
                raise ComponentError(spec.name, f"could not run: {err}", log, "", BUILD_FIX) from err
        running = Running(spec.name, popen, ports, log, argv, start_ticks(popen.pid))
        try:
            _wait_ready(spec, running, offset, poll)
            return running
        except AddressInUseError as err:
            last = err
            terminate(running, grace=2.0)
        except BaseException:
            terminate(running, grace=2.0)
            raise
    assert last is not None
    raise ComponentError(
        spec.name,
        f"could not bind its ports after {attempts} attempts (address already in use)",
        log,
        last.tail,
        "stop whatever holds the ports above, or retry",
    ) from last


def _wait_ready(spec: ComponentSpec, running: Running, offset: int, poll: float) -> None:
    deadline = time.monotonic() + spec.timeout
    while True:
        code = running.popen.poll()
        if code is not None:
            _raise_failure(spec, running, offset, f"exited with code {code} before it was ready")
        # Alive after the probe too: in a lost port race the probe may reach the port's owner.
        if spec.ready(running.ports) and running.popen.poll() is None:
            return
        if time.monotonic() >= deadline:
            _raise_failure(spec, running, offset, f"was not ready after {spec.timeout:.0f}s")
        time.sleep(poll)


def _raise_failure(spec: ComponentSpec, running: Running, offset: int, reason: str) -> None:
    tail = log_tail(running.log, offset)
    error = AddressInUseError if ADDRESS_IN_USE in tail.lower() else ComponentError
    raise error(spec.name, reason, running.log, tail, spec.fix)


def terminate(running: Running, grace: float) -> None:
    """Stop the component's whole process group (its forks too) and reap it."""
    stop_groups([running.pid], grace)
    running.popen.wait(timeout=5)  # returns at once: stop_groups verified the group is gone
