"""Bring the local control plane up and down: etcd, kube-apiserver, kube-controller-manager
(and optionally kube-scheduler), from binaries built by ``hack/build-tools.sh``.

Two ways in. ``ControlPlane`` owns its processes for as long as the object lives (a pytest
session fixture uses it as a context manager). ``up``/``down``/``status`` work across
processes through ``state.json``: ``make cluster-up`` starts the cluster and exits, and the
components keep running in their own sessions until ``make cluster-down``.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from . import components, netns, state
from . import node as local_node
from .certs import CertPaths, write_certs
from .errors import DevClusterError, MissingBinaryError
from .health import admin_context, get_ok, self_signed_context
from .kubeconfig import write_kubeconfig
from .paths import repo_root
from .procs import PortPicker, is_alive, stop_groups
from .runner import ComponentSpec, Running, launch
from .state import ClusterState, ProcessRecord, load

__all__ = ["ControlPlane", "Status", "Timeouts", "UpResult", "down", "load", "status", "up"]

CORE = ("etcd", "kube-apiserver", "kube-controller-manager")
SCHEDULER = "kube-scheduler"


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: for the apiserver's /readyz, for any other component, for a stop."""

    apiserver: float = 60.0
    component: float = 30.0
    stop_grace: float = 10.0


class ControlPlane:
    """The dev control plane in ``workdir``, run from the binaries in ``bindir``."""

    def __init__(
        self,
        workdir: Path,
        bindir: Path,
        *,
        with_scheduler: bool = False,
        timeouts: Timeouts | None = None,
        apiserver_args: tuple[str, ...] = (),
        client_args: tuple[str, ...] = (),
        controller_manager_args: tuple[str, ...] = (),
        scheduler_args: tuple[str, ...] = (),
        node: bool = False,
        repo: Path | None = None,
    ) -> None:
        self.workdir = workdir.absolute()
        self.bindir = bindir.absolute()
        self.node = node
        """Also a real node (``node.py``): containerd, kubelet, kube-proxy; needs the scheduler."""
        self.with_scheduler = with_scheduler or node
        self.repo = repo or repo_root()
        self.apiserver_args = apiserver_args
        """More kube-apiserver flags (the bench turns on its audit log with them)."""
        self.client_args = client_args
        """More kube-controller-manager and kube-scheduler flags (the bench raises their API QPS with them)."""
        self.controller_manager_args = controller_manager_args
        """More kube-controller-manager flags only (the bench's controller concurrency)."""
        self.scheduler_args = scheduler_args
        """More kube-scheduler flags only."""
        self.timeouts = timeouts or Timeouts()
        self._running: list[Running] = []
        self._specs: dict[str, ComponentSpec] = {}
        self._state: ClusterState | None = None

    @property
    def state(self) -> ClusterState:
        if self._state is None:
            raise DevClusterError("the control plane is not started")
        return self._state

    @property
    def kubeconfig(self) -> Path:
        return Path(self.state.kubeconfig)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ClusterState:
        """Start every component, wait for each to be ready, record ``state.json``."""
        with _locked(self.workdir):
            return self._start()

    def stop(self) -> None:
        """Stop every component this object started; verify that none is left. Idempotent."""
        if not self._running:
            if self.node:
                local_node.teardown(self.workdir)
            return
        for r in reversed(self._running):  # etcd last: the apiserver needs it to shut down
            stop_groups([r.pid], self.timeouts.stop_grace)
            r.popen.wait(timeout=5)
        left = [f"{r.name} (pid {r.pid})" for r in self._running if is_alive(r.pid, r.ticks)]
        if left:
            raise DevClusterError(f"still running after stop: {', '.join(left)}")
        if self.node:
            local_node.teardown(self.workdir)
        recorded = load(self.workdir) if self._state else None
        if recorded and {p.pid for p in recorded.processes} == {r.pid for r in self._running}:
            state.remove(self.workdir)
            _wipe_data(self.workdir)
        self._running.clear()
        self._state = None

    def _start(self) -> ClusterState:
        if self._running:
            raise DevClusterError("this control plane is already started")
        binaries = self._binaries()
        recorded = load(self.workdir)
        if recorded is not None and not _problems(recorded):
            raise DevClusterError(
                f"a dev cluster is already running in {self.workdir}: reuse it (`dev-cluster up`)"
                f" or stop it (`dev-cluster down --dir {self.workdir}`)"
            )
        _clear_leftovers(self.workdir, self.timeouts.stop_grace)
        began, t0 = time.time(), time.monotonic()
        node = local_node.Node(self.workdir, self.bindir, self.repo) if self.node else None
        if node:
            node.prepare()  # the slow part (images) and what can fail, before the host is changed
        logs, data = self.workdir / "logs", self.workdir / "etcd"
        logs.mkdir(parents=True, exist_ok=True)
        _wipe_data(self.workdir)
        host = netns.HOST_IP if node else "127.0.0.1"
        certs = write_certs(self.workdir / "certs", (host,))
        kubeconfig = self.workdir / "kubeconfig"
        pick, t = PortPicker(), self.timeouts
        try:
            if node:
                node.create(components.SERVICE_CIDR)
            etcd = self._launch(components.etcd(binaries["etcd"], data, t.component), logs, pick)
            etcd_url = f"http://127.0.0.1:{etcd.ports['etcd-client']}"
            extra = (*self.apiserver_args, *(local_node.apiserver_args(certs) if node else ()))
            spec = components.kube_apiserver(binaries["kube-apiserver"], etcd_url, certs, t.apiserver, extra, host)
            api = self._launch(spec, logs, pick)
            server = f"https://{host}:{api.ports['kube-apiserver']}"
            write_kubeconfig(kubeconfig, server, certs)
            kcm = binaries["kube-controller-manager"]
            spec = components.kube_controller_manager(
                kcm, kubeconfig, certs, t.component, (*self.client_args, *self.controller_manager_args)
            )
            self._launch(spec, logs, pick)
            if self.with_scheduler:
                spec = components.kube_scheduler(
                    binaries[SCHEDULER], kubeconfig, t.component, (*self.client_args, *self.scheduler_args)
                )
                self._launch(spec, logs, pick)
            if node:
                node.configure(server, certs)
                self._launch(node.containerd(t.component), logs, pick)
                node.import_images()
                self._launch(node.kubelet(server, certs, t.apiserver), logs, pick)
                self._launch(node.kube_proxy(t.component), logs, pick)
        except BaseException:
            self.stop()
            raise
        self._state = ClusterState(
            workdir=str(self.workdir),
            server=server,
            kubeconfig=str(kubeconfig),
            certdir=str(certs.dir),
            ports={k: v for r in self._running for k, v in r.ports.items()},
            processes=[_record(r) for r in self._running],
            started_at=began,
            startup_seconds=round(time.monotonic() - t0, 3),
            with_scheduler=self.with_scheduler,
            node=self.node,
        )
        state.save(self._state)
        return self._state

    def _launch(self, spec: ComponentSpec, logs: Path, pick: PortPicker) -> Running:
        running = launch(spec, logs, pick)
        self._running.append(running)
        self._specs[spec.name] = spec
        return running

    def restart(self, name: str, down: float = 0.0) -> int:
        """Stop the component ``name`` (SIGTERM, then SIGKILL after the grace), wait ``down`` seconds,
        and start it again on the same ports; returns its new pid once it is ready again.

        A fault for tests: the API server restarted under a running client (its watches break,
        its requests fail for a while), as at a control-plane upgrade.
        """
        i, old = next((i, r) for i, r in enumerate(self._running) if r.name == name)
        spec = self._specs[name]
        stop_groups([old.pid], self.timeouts.stop_grace)
        old.popen.wait(timeout=5)
        time.sleep(down)
        same = itertools.cycle([old.ports[n] for n in spec.port_names])  # each attempt asks for them in this order
        running = launch(spec, old.log.parent, lambda: next(same))
        self._running[i] = running
        if self._state is not None:
            self._state = replace(self._state, processes=[_record(r) for r in self._running])
            state.save(self._state)
        return running.pid

    def _binaries(self) -> dict[str, Path]:
        names = [*CORE, SCHEDULER] if self.with_scheduler else list(CORE)
        names += list(local_node.BINARIES) if self.node else []
        paths = {name: self.bindir / name for name in names}
        missing = [n for n, p in paths.items() if not (p.is_file() and _executable(p))]
        if missing:
            raise MissingBinaryError(missing, self.bindir)
        return paths


@dataclass(frozen=True)
class Status:
    """What ``status`` found: the recorded cluster (if any) and what is wrong with it."""

    workdir: Path
    state: ClusterState | None
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return self.state is not None and not self.problems


@dataclass(frozen=True)
class UpResult:
    """The running cluster, and whether ``up`` found it already running."""

    state: ClusterState
    reused: bool


def status(workdir: Path) -> Status:
    """Check the cluster recorded in ``workdir``: processes alive, health endpoints OK."""
    workdir = workdir.absolute()
    recorded = load(workdir)
    if recorded is None:
        return Status(workdir, None, ("no dev cluster recorded here",))
    return Status(workdir, recorded, _problems(recorded))


def up(
    workdir: Path,
    bindir: Path,
    *,
    with_scheduler: bool = False,
    timeouts: Timeouts | None = None,
    node: bool = False,
) -> UpResult:
    """Idempotent start: reuse a healthy recorded cluster, else clear leftovers and start afresh.

    The processes outlive the caller; stop them with ``down(workdir)``.
    """
    plane = ControlPlane(workdir, bindir, with_scheduler=with_scheduler, timeouts=timeouts, node=node)
    with _locked(plane.workdir):
        recorded = load(plane.workdir)
        if recorded is not None:
            shape_ok = (recorded.with_scheduler or not with_scheduler) and (recorded.node or not node)
            if shape_ok and not _problems(recorded):
                return UpResult(recorded, reused=True)
            _clear_leftovers(plane.workdir, plane.timeouts.stop_grace)
        return UpResult(plane._start(), reused=False)


def down(workdir: Path, *, grace: float = 10.0) -> ClusterState | None:
    """Stop the cluster recorded in ``workdir`` (whoever started it); return what was recorded."""
    workdir = workdir.absolute()
    with _locked(workdir):
        return _clear_leftovers(workdir, grace)


def _clear_leftovers(workdir: Path, grace: float) -> ClusterState | None:
    recorded = load(workdir)
    if recorded is None:
        local_node.teardown(workdir)  # a node whose start failed before the cluster was recorded
        return None
    live = [p for p in recorded.processes if is_alive(p.pid, p.ticks)]
    for p in reversed(live):  # etcd last: the apiserver needs it to shut down
        stop_groups([p.pgid], grace)
    left = [f"{p.name} (pid {p.pid})" for p in live if is_alive(p.pid, p.ticks)]
    if left:
        raise DevClusterError(f"still running after stop: {', '.join(left)}")
    local_node.teardown(workdir)
    state.remove(workdir)
    _wipe_data(workdir)
    return recorded


def _problems(recorded: ClusterState) -> tuple[str, ...]:
    problems = [
        f"{p.name} (pid {p.pid}) is not running; its log: {p.log}"
        for p in recorded.processes
        if not is_alive(p.pid, p.ticks)
    ]
    if problems:
        return tuple(problems)
    try:
        admin = admin_context(CertPaths.in_dir(Path(recorded.certdir)))
    except OSError as err:
        return (f"cannot load the admin certificate: {err}",)
    for name, url in recorded.health_urls().items():
        context = admin if name == "kube-apiserver" else self_signed_context()
        if not get_ok(url, None if url.startswith("http:") else context):
            problems.append(f"{name} is not healthy at {url}")
    return tuple(problems)


def _record(r: Running) -> ProcessRecord:
    return ProcessRecord(r.name, r.pid, r.pid, r.ticks, str(r.log), r.argv)


def _executable(path: Path) -> bool:
    return os.access(path, os.X_OK)


def _wipe_data(workdir: Path) -> None:
    shutil.rmtree(workdir / "etcd", ignore_errors=True)


@contextmanager
def _locked(workdir: Path) -> Iterator[None]:
    """Serialise up/down/start on one workdir across processes."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
