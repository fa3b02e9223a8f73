"""A simulated cluster for the benchmarks: the local control plane with kube-scheduler, plus kwok.

Why a simulator: the targets in docs/ARCHITECTURE.md are about an operator watching 10,000 pods,
and this machine (2 cores, no container engine) cannot run 10,000 containers. kwok plays the
kubelets of N fake nodes instead: it makes the nodes Ready and every pod the scheduler binds to
them Running, so Deployments, ReplicaSets, the scheduler and rollouts behave as on a real cluster,
and the API server carries the real object count and event rate. kwok's stages (bench/kwok/
stages.yaml) also report an OOM kill on demand, the way a kubelet would: label a pod and kwok
writes ``lastState.terminated`` (reason OOMKilled, exit code 137) and ``restartCount`` 1.

kwok is built by ``hack/build-tools.sh kwok`` (only ``make bench`` does that) and linked into
``.cluster/bin`` with the control-plane binaries. Everything started here is stopped on exit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import kubernetes

from oncall_operator import devcluster

REPO = pathlib.Path(__file__).resolve().parents[1]
STAGES = REPO / "bench" / "kwok" / "stages.yaml"
AUDIT_POLICY = REPO / "bench" / "kwok" / "audit-policy.yaml"
FAKE_NODE = ("kwok.x-k8s.io/node", "fake")
OOM_LABEL = "bench.oncall.dev/oom-kill"
KWOK_CONFIG = REPO / "bench" / "kwok" / "kwok.yaml"
PODS_PER_NODE = 500
FILL = 0.8
"""Share of a node's pod room the bench fills (the scheduler then still finds room for the measured pods)."""
CLIENT_QPS = ("--kube-api-qps=500", "--kube-api-burst=1000")
"""kube-controller-manager's and kube-scheduler's API rate (defaults 20 and 50/s): at 20/s the
ReplicaSet controller alone needs 40 minutes to create 50,000 pods; at 500/s growing takes minutes."""
CONTROLLER_CONCURRENCY = ("--concurrent-replicaset-syncs=16", "--concurrent-deployment-syncs=16")
"""ReplicaSets and Deployments synced at once (default 5 each): 500 Deployments of 100 pods are made at once."""
APISERVER_LIMITS = (
    "--max-requests-inflight=0",
    "--max-mutating-requests-inflight=0",
    "--enable-priority-and-fairness=false",
)
"""No in-flight caps and no API Priority and Fairness (what kwokctl sets for its own clusters): every
client here is the admin, whose requests are exempt anyway, so they only cost a layer per request.
Only where asked (``unlimited``, the pods bench): the storm bench keeps the API server's own limits,
whose 429s are part of what it measures."""


def bindir() -> pathlib.Path:
    return devcluster.default_bindir(devcluster.default_workdir(REPO))


def kwok_binary() -> pathlib.Path | None:
    """The kwok that ``hack/build-tools.sh kwok`` linked, or None when it was never built."""
    path = bindir() / "kwok"
    return path if path.exists() and os.access(path, os.X_OK) else None


def kwok_version() -> str:
    """The pin in hack/tools/kwok/go.mod (what the cached binary was built from)."""
    for line in (REPO / "hack" / "tools" / "kwok" / "go.mod").read_text().splitlines():
        if line.startswith("require sigs.k8s.io/kwok "):
            return line.split()[-1]
    return "unknown"


def node(name: str) -> dict[str, Any]:
    """A fake node kwok manages (by annotation), with room for PODS_PER_NODE pods."""
    room = {"cpu": "1000", "memory": "4000Gi", "pods": str(PODS_PER_NODE)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE[0]: FAKE_NODE[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"allocatable": room, "capacity": room},
    }


class SimCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok, in ``workdir``.

    Use as a context manager; ``nodes(count)`` adds fake nodes and waits until they are Ready.
    ``unlimited``: the API server without in-flight caps and APF (:data:`APISERVER_LIMITS`).
    """

    def __init__(self, workdir: pathlib.Path, unlimited: bool = False) -> None:
        binary = kwok_binary()
        if binary is None:
            raise RuntimeError("kwok is not built: run `hack/build-tools.sh kwok` (or `make bench`)")
        self.kwok_bin = binary
        self.workdir = workdir
        self.audit_log = workdir / "audit.log"
        """Every non-watch request to the operator's kinds, pods, workloads and events, with its user agent."""
        audit = (
            f"--audit-policy-file={AUDIT_POLICY}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",  # buffered: the log must not slow the requests it counts
            "--audit-log-batch-max-wait=1s",
            "--audit-log-maxbackup=0",
            "--audit-log-maxsize=0",
        )
        self.plane = devcluster.ControlPlane(
            workdir / "cluster",
            bindir(),
            with_scheduler=True,
            apiserver_args=(*audit, *(APISERVER_LIMITS if unlimited else ())),
            client_args=CLIENT_QPS,
            controller_manager_args=CONTROLLER_CONCURRENCY,
        )
        self.kwok: subprocess.Popen[bytes] | None = None
        self._api: kubernetes.client.ApiClient | None = None
        self.node_count = 0
        self.startup_s = 0.0

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.plane.kubeconfig

    @property
    def api(self) -> kubernetes.client.ApiClient:
        if self._api is None:
            raise RuntimeError("the simulated cluster is not started")
        return self._api

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        cmd = [str(bindir() / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def apply(self, objs: list[dict[str, Any]], namespace: str | None = None) -> None:
        ns = ["-n", namespace] if namespace else []
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        self.kubectl("apply", *ns, "-f", "-", stdin=body)

    def __enter__(self) -> SimCluster:
        t0 = time.monotonic()
        self.plane.start()
        try:
            log = (self.workdir / "kwok.log").open("w")
            cmd = [
                str(self.kwok_bin),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={STAGES}",
                f"--config={KWOK_CONFIG}",
                "--v=WARN",  # kwok logs every pod it patches at INFO: 50,000 JSON lines for nothing
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE[0]}={FAKE_NODE[1]}",
                "--node-lease-duration-seconds=40",
                "--cidr=10.0.0.1/16",
                "--node-ip=10.1.0.1",
            ]
            self.kwok = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._api = kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
            self._api.user_agent = "oncall-bench"
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.startup_s = round(time.monotonic() - t0, 1)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.kwok is not None:
            stop(self.kwok)
            self.kwok = None
        self.plane.stop()

    def nodes(self, pods: int, timeout: float = 120) -> int:
        """Enough fake nodes for ``pods`` pods (FILL of PODS_PER_NODE each, at least 2), all Ready."""
        want = max(2, math.ceil(pods / (PODS_PER_NODE * FILL)))
        if want > self.node_count:
            self.apply([node(f"kwok-node-{i}") for i in range(self.node_count, want)])
            self.node_count = want
        core = kubernetes.client.CoreV1Api(self.api)

        def ready() -> bool:
            items = core.list_node(label_selector="type=kwok").items
            ok = [n for n in items if _ready(n)]
            tainted = [n for n in ok if any(t.key.startswith("node.kubernetes.io/") for t in _taints(n))]
            return len(ok) >= want and not tainted

        wait(ready, timeout, f"{want} kwok nodes Ready")
        return want

    @staticmethod
    def node_for(first_pod: int) -> str:
        """The node that the pods numbered from ``first_pod`` fill (FILL of PODS_PER_NODE per node, in order)."""
        return f"kwok-node-{first_pod // int(PODS_PER_NODE * FILL)}"

    def ready_replicas(self, namespace: str) -> int:
        apps = kubernetes.client.AppsV1Api(self.api)
        return sum(
            (d.status.ready_replicas if d.status else 0) or 0 for d in apps.list_namespaced_deployment(namespace).items
        )


def _ready(n: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions if n.status else None) or [])


def _taints(n: Any) -> list[Any]:
    return list((n.spec.taints if n.spec else None) or [])


def wait(probe: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop(proc: subprocess.Popen[Any], grace: float = 15) -> None:
    """SIGTERM the process group started with ``start_new_session``, then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def simulated(workdir: pathlib.Path) -> Iterator[SimCluster]:
    with SimCluster(workdir) as sim:
        yield sim
