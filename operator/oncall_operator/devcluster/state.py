"""``<workdir>/state.json``: what a running dev cluster is, for processes that did not start it.

``make cluster-up`` exits while the control plane keeps running; ``make cluster-down``, the test
fixture and ``dev-cluster status`` find it again through this file (pids with their start
times, ports, server URL, kubeconfig path). Written atomically, so a reader never sees half.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import DevClusterError
from .netns import NODE_IP
from .nodeconfig import KUBELET_HEALTHZ, PROXY_HEALTHZ

STATE_FILE = "state.json"


@dataclass(frozen=True)
class ProcessRecord:
    """One component process: enough to recognise it (pid + start ticks) and stop its group."""

    name: str
    pid: int
    pgid: int
    ticks: int | None
    log: str
    argv: list[str]


@dataclass(frozen=True)
class ClusterState:
    """A started dev cluster."""

    workdir: str
    server: str
    kubeconfig: str
    certdir: str
    ports: dict[str, int]
    processes: list[ProcessRecord]
    started_at: float
    startup_seconds: float
    with_scheduler: bool
    node: bool = False

    def health_urls(self) -> dict[str, str]:
        """Component name -> health endpoint."""
        urls = {
            "etcd": f"http://127.0.0.1:{self.ports['etcd-client']}/health",
            "kube-apiserver": f"{self.server}/readyz",
        }
        for name in ("kube-controller-manager", "kube-scheduler"):
            if name in self.ports:
                urls[name] = f"https://127.0.0.1:{self.ports[name]}/healthz"
        if self.node:
            urls["kubelet"] = f"http://{NODE_IP}:{KUBELET_HEALTHZ}/healthz"
            urls["kube-proxy"] = f"http://{NODE_IP}:{PROXY_HEALTHZ}/healthz"
        return urls


def state_path(workdir: Path) -> Path:
    return workdir / STATE_FILE


def save(state: ClusterState) -> None:
    path = state_path(Path(state.workdir))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def load(workdir: Path) -> ClusterState | None:
    """The recorded cluster in ``workdir``, or None if nothing was started there."""
    path = state_path(workdir)
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        processes = [ProcessRecord(**p) for p in raw.pop("processes")]
        return ClusterState(processes=processes, **raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise DevClusterError(
            f"{path} is unreadable ({err}); check `pgrep -af 'etcd|kube-'` for leftovers, "
            "stop them, then delete the file"
        ) from err


def remove(workdir: Path) -> None:
    state_path(workdir).unlink(missing_ok=True)
