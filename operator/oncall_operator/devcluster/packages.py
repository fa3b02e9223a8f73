"""The Debian packages a real node runs on, installed by the project itself when missing.

containerd, runc and the CNI plugins are the node's runtime; debootstrap builds the operator
image's root filesystem; iproute2, iptables and util-linux's nsenter build and enter the
node's network namespace. A fresh machine (CI) has none of them: as root they are installed
with ``apt-get install -y``; otherwise the error names the one command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import DevClusterError

# what must exist -> the Debian package that provides it
NEEDED = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
}


def missing() -> list[str]:
    """The packages whose programs are not on this machine, in a stable order."""
    absent = {pkg for what, pkg in NEEDED.items() if not _present(what)}
    return sorted(absent)


def ensure() -> None:
    """Install what is missing (as root, with apt-get), or fail with the command to run."""
    absent = missing()
    if not absent:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *absent]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        names = ", ".join(absent)
        raise DevClusterError(f"the local node needs Debian packages {names}: run `sudo {' '.join(command)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:  # a fresh machine may not have package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0 or missing():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DevClusterError(f"`{' '.join(command)}` failed: {' | '.join(tail)}")


def _present(what: str) -> bool:
    return Path(what).exists() if what.startswith("/") else shutil.which(what) is not None
