"""A real node for the local control plane: containerd, the kubelet and kube-proxy.

Every OOM kill the rest of the suite remediates is written into pod status by a test; this node
has the kernel do it. It runs on this machine without Docker: the kubelet and kube-proxy built
from the same Kubernetes module as the control plane (``hack/build-tools.sh kubelet``), Debian's
containerd, runc and CNI plugins (``packages``), all three inside the node's own network
namespace (``netns``), pods' cgroups under one root of ours (``cgroups``), images built here
(``images``). ``ControlPlane(node=True)`` starts it after the control plane and stops it before;
``teardown`` then removes what the processes leave behind (shims, containers, mounts, cgroups,
the namespace) and puts back what they changed on the host (``hostsnap``). ``node.json``
records the host as it was, so ``dev-cluster down`` from another process can do the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import urllib.request
from dataclasses import asdict
from pathlib import Path

from . import cgroups, hostsnap, images, netns, packages
from .certs import CertPaths
from .errors import DevClusterError
from .health import admin_context, get_ok
from .kubeconfig import write_kubeconfig
from .nodeconfig import (
    KUBELET_HEALTHZ,
    NODE_NAME,
    PROXY_HEALTHZ,
    NodePaths,
    cni_conflist,
    containerd_toml,
    kube_proxy_args,
    kubelet_args,
    kubelet_yaml,
)
from .procs import PROC
from .runner import ComponentSpec, Ports

BINARIES = ("kubelet", "kube-proxy")
_NO_PROXY = urllib.request.ProxyHandler({})


def machine_unable() -> str | None:
    """Why this machine can never run the node (None if it can): what no build or install fixes."""
    if os.uname().sysname != "Linux":
        return "a real node needs Linux"
    if os.geteuid() != 0:
        return "a real node needs root (containerd, cgroups, network namespaces)"
    if not cgroups.has_memory_controller():
        return "the kernel has no cgroup memory controller, so nothing can be OOM-killed at a limit"
    return None


def unable(bindir: Path) -> str | None:
    """Why the node cannot start here now (None if it can). Missing packages are not a reason:
    ``prepare`` installs them."""
    absent = [b for b in BINARIES if not (bindir / b).exists()]
    if absent:
        return f"{', '.join(absent)} not built in {bindir}: run `make tools` (hack/build-tools.sh kubelet)"
    return machine_unable()


class Node:
    """The node of the control plane in ``workdir``."""

    def __init__(self, workdir: Path, bindir: Path, repo: Path) -> None:
        self.paths = NodePaths.under(workdir)
        self.bindir, self.repo = bindir, repo
        self.archives: dict[str, Path] = {}

    def prepare(self) -> None:
        """What can fail slowly without changing the host: packages, binaries, images."""
        reason = unable(self.bindir)
        if reason:
            raise DevClusterError(reason)
        packages.ensure()
        self.archives = images.build_all(self.repo, self.paths.root / "images")

    def create(self, service_cidr: str) -> None:
        """Record the host, then make the namespace and the cgroup root."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.state.write_text(json.dumps(asdict(hostsnap.take())))
        netns.create(service_cidr)
        cgroups.create()

    def configure(self, server: str, certs: CertPaths) -> None:
        """The files the node's components read; ``server`` as seen from the node."""
        p = self.paths
        write_kubeconfig(p.kubeconfig, server, certs)
        p.containerd_config.write_text(containerd_toml(p, images.PAUSE))
        p.cni_conf.mkdir(parents=True, exist_ok=True)
        (p.cni_conf / "10-oncall-node.conflist").write_text(cni_conflist(p))
        p.kubelet_config.write_text(kubelet_yaml(p, certs.ca_cert))

    def containerd(self, timeout: float) -> ComponentSpec:
        binary = Path(shutil.which("containerd") or "containerd")
        sock = self.paths.socket

        def ready(_: Ports) -> bool:
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(sock))
                except OSError:
                    return False
                return True

        args = ["--config", str(self.paths.containerd_config)]
        return _in_netns(ComponentSpec("containerd", binary, (), lambda _: args, ready, timeout))

    def import_images(self) -> None:
        images.import_all(self.paths.socket, self.archives)

    def kubelet(self, server: str, certs: CertPaths, timeout: float) -> ComponentSpec:
        context = admin_context(certs)

        def ready(_: Ports) -> bool:
            return get_ok(f"http://{netns.NODE_IP}:{KUBELET_HEALTHZ}/healthz") and node_ready(server, context)

        args = kubelet_args(self.paths)
        return _in_netns(ComponentSpec("kubelet", self.bindir / "kubelet", (), lambda _: args, ready, timeout))

    def kube_proxy(self, timeout: float) -> ComponentSpec:
        def ready(_: Ports) -> bool:
            return get_ok(f"http://{netns.NODE_IP}:{PROXY_HEALTHZ}/healthz")

        args = kube_proxy_args(self.paths)
        return _in_netns(ComponentSpec("kube-proxy", self.bindir / "kube-proxy", (), lambda _: args, ready, timeout))


def node_ready(server: str, context: ssl.SSLContext) -> bool:
    """Whether the API server has the node with condition Ready=True."""
    opener = urllib.request.build_opener(_NO_PROXY, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(f"{server}/api/v1/nodes/{NODE_NAME}", timeout=2) as resp:
            conditions = json.loads(resp.read())["status"].get("conditions") or []
    except (OSError, ValueError, KeyError):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def apiserver_args(certs: CertPaths) -> tuple[str, ...]:
    """What the API server needs to reach the kubelet: its InternalIP, and a client certificate."""
    return (
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={certs.admin_cert}",
        f"--kubelet-client-key={certs.admin_key}",
    )


def teardown(workdir: Path) -> None:
    """After the node's processes stopped: remove what they left and restore the host."""
    paths = NodePaths.under(workdir)
    if not paths.state.exists():
        return
    snap = hostsnap.HostSnapshot(**json.loads(paths.state.read_text()))
    _kill_shims(paths.socket)
    problems = [f"cgroup {c} is still there" for c in cgroups.remove()]
    hostsnap.unmount_under(paths.root)
    netns.delete()
    problems += hostsnap.restore(snap)
    problems += [f"{m} is still mounted" for m in hostsnap.mounts_under(paths.root)]
    if problems:
        raise DevClusterError("the local node left: " + "; ".join(problems))
    shutil.rmtree(paths.root, ignore_errors=True)


def leftovers(workdir: Path, snap: hostsnap.HostSnapshot) -> list[str]:
    """Everything a stopped node could have left behind (the tests assert it is nothing)."""
    paths = NodePaths.under(workdir)
    found = [f"process {pid} ({cmd})" for pid, cmd in _processes_naming(str(paths.root))]
    found += [f"cgroup {c}" for c in cgroups.leftovers()]
    found += [f"mount {m}" for m in hostsnap.mounts_under(paths.root)]
    if netns.exists():
        found.append(f"network namespace {netns.NAME}")
    if Path(f"/sys/class/net/{netns.HOST_IF}").exists():
        found.append(f"interface {netns.HOST_IF}")
    return found + hostsnap.differences(snap)


def _in_netns(spec: ComponentSpec) -> ComponentSpec:
    return dataclasses.replace(spec, prefix=netns.enter())


def _kill_shims(sock: Path) -> None:
    """containerd's shims outlive it in their own sessions; they name its socket on their command line."""
    for pid, _ in _processes_naming(str(sock)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _processes_naming(text: str) -> list[tuple[int, str]]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append((int(entry.name), cmd.strip()))
    return found
