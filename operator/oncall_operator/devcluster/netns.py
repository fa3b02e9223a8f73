"""The node's own network namespace: the real node's traffic never leaves this machine.

containerd, the kubelet and kube-proxy run inside a network namespace made here (``ip netns
add``), joined to the host by one veth pair: the host end has ``HOST_IP``, the node end
``NODE_IP``. The kubelet refuses a loopback node address, and a namespace keeps the pods'
bridge, iptables rules and routes off the host's own network. The only routes inside are the
veth's subnet and the Service range (so kube-proxy's rules see ClusterIP traffic): no default
route, so nothing the node or a pod sends can go anywhere but this machine. Processes enter it
with ``nsenter --net`` (not ``ip netns exec``, which would also give each its own mount
namespace, hiding the kubelet's volume mounts from containerd).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import DevClusterError

NAME = "oncall-node"
HOST_IF, NODE_IF = "oncall-h0", "oncall-n0"
HOST_IP, NODE_IP, PREFIX = "10.200.0.1", "10.200.0.2", 24
NETNS_DIR = Path("/run/netns")


def path() -> Path:
    return NETNS_DIR / NAME


def exists() -> bool:
    return path().exists()


def enter() -> tuple[str, ...]:
    """The command prefix that runs a program inside the node's namespace."""
    return ("nsenter", f"--net={path()}", "--")


def create(service_cidr: str) -> None:
    """Make the namespace and the veth pair; refuse if a node namespace is already there."""
    if exists():
        raise DevClusterError(
            f"network namespace {NAME} already exists: another local node runs on this machine, or one "
            f"was left behind; stop it with `dev-cluster down`, or remove it with `ip netns del {NAME}`"
        )
    try:
        _ip("netns", "add", NAME)
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NODE_IF, "netns", NAME)
        _ip("addr", "add", f"{HOST_IP}/{PREFIX}", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("-n", NAME, "link", "set", "lo", "up")
        _ip("-n", NAME, "addr", "add", f"{NODE_IP}/{PREFIX}", "dev", NODE_IF)
        _ip("-n", NAME, "link", "set", NODE_IF, "up")
        _ip("-n", NAME, "route", "add", service_cidr, "dev", NODE_IF)
    except BaseException:
        delete()
        raise


def delete() -> None:
    """Remove the namespace (its end of the veth, the pods' bridge and rules go with it)."""
    if exists():
        _ip("netns", "del", NAME)
    if Path(f"/sys/class/net/{HOST_IF}").exists():
        _ip("link", "del", HOST_IF)


def run(*argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a command inside the namespace (e.g. curl a Service's ClusterIP), output captured."""
    return subprocess.run([*enter(), *argv], capture_output=True, text=True, timeout=timeout, check=False)


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise DevClusterError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
