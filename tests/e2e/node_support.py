"""The real node for the end-to-end tests: kernel OOM kills, and the chart's image as real pods.

One control plane with a real node (``ControlPlane(node=True)``: containerd, kubelet and
kube-proxy in the node's network namespace, images built from this repository) per test
session, started only when a test asks for ``node_cluster`` (so sessions without node tests
pay nothing), separate from the loopback control plane of the other tests. Tear-down asserts
that nothing is left: no process, mount, cgroup, network namespace, host path or changed sysctl.

A machine that genuinely cannot run a node (not root, no cgroup memory controller, not Linux)
skips these tests and says why; anything else that goes wrong (a missing binary, a package
that cannot be installed, a node that never gets Ready) fails, with or without ``CI``.
"""

import contextlib
import dataclasses
import fcntl
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from oncall_operator.devcluster import cgroups, hostsnap, images, netns
from oncall_operator.devcluster import node as local_node
from tests.conftest import REPO, eventually
from tests.e2e.conftest import Kubectl, install_crds
from tests.e2e.oom_support import AGENT, Cluster

CRD_LABEL = "app.kubernetes.io/part-of=oncall-operator"
NODE_MANAGERS = {"kube-controller-manager", "kube-scheduler", "kubelet"}
"""Who may write a pod on the real node: its controller, the scheduler (binding), the kubelet (status)."""


@dataclasses.dataclass
class NodeCluster:
    plane: devcluster.ControlPlane
    kubectl: Kubectl
    cluster: Cluster
    startup_seconds: float


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    reason = local_node.machine_unable()
    if reason:
        pytest.skip(f"this machine cannot run a real node: {reason}")
    bindir = devcluster.default_bindir(devcluster.default_workdir(REPO))
    workdir = tmp_path_factory.mktemp("node-cluster")
    with one_node_per_machine():
        before = hostsnap.take()
        yield from _node_cluster(devcluster.ControlPlane(workdir, bindir, node=True, repo=REPO))
    left = local_node.leftovers(workdir, before)
    assert not left, f"the real node left behind: {left}"


def _node_cluster(plane: devcluster.ControlPlane) -> Iterator[NodeCluster]:
    t0 = time.monotonic()
    with plane:
        startup = time.monotonic() - t0
        print(f"\nreal node: control plane + node Ready in {startup:.1f}s (images included)")
        kubectl = Kubectl(plane.bindir / "kubectl", plane.kubeconfig)
        install_crds(kubectl)
        client = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
        client.user_agent = AGENT
        yield NodeCluster(plane, kubectl, Cluster(client, kubectl), startup)


@contextlib.contextmanager
def one_node_per_machine(timeout: float = 240.0) -> Iterator[None]:
    """Wait for another checkout's test session to finish with the machine's one node."""
    lock = images.cache_dir().parent / "real-node.lock"
    with lock.open("w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                held = f"another test session held the real node for {timeout:.0f}s ({lock})"
                assert time.monotonic() < deadline, held
                time.sleep(1)
        yield


def hog(kind: str, name: str, limit: str, mib: int) -> dict[str, Any]:
    """A Deployment/StatefulSet of one memory hog holding ``mib`` MiB under a ``limit`` memory limit."""
    container = {
        "name": "hog",
        "image": images.HOG,
        "imagePullPolicy": "Never",
        "args": [str(mib)],
        "resources": {"requests": {"memory": "16Mi", "cpu": "10m"}, "limits": {"memory": limit}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
        },
    }
    if kind == "StatefulSet":
        spec.update(serviceName=name, podManagementPolicy="Parallel")
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def kernel_oom_kills(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The OOM kills the kubelet reported for the pod's first container (last and current state)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    found = []
    for status in statuses[:1]:
        for state in (status.get("lastState") or {}, status.get("state") or {}):
            term = state.get("terminated")
            if term and term.get("reason") == "OOMKilled":
                found.append(term)
    return found


def running_ready(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(s.get("ready") and "running" in (s.get("state") or {}) for s in statuses)


def restarts(pod: dict[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def assert_pods_not_written(cluster: Cluster, namespace: str) -> None:
    """No pod has a spec change, a field, label, annotation or finalizer from anyone but the node's parts."""
    for pod in cluster.pods(namespace):
        meta = pod["metadata"]
        managers = {m["manager"] for m in meta.get("managedFields") or ()}
        assert managers <= NODE_MANAGERS, f"pod {meta['name']} written by {managers - NODE_MANAGERS}"
        assert meta.get("generation", 1) == 1, f"pod {meta['name']} spec changed: generation {meta['generation']}"
        keys = [*(meta.get("annotations") or {}), *(meta.get("labels") or {}), *(meta.get("finalizers") or ())]
        assert not [k for k in keys if k.startswith(("oncall.dev", "kopf"))], f"pod {meta['name']}: {keys}"


def in_node(*argv: str) -> str:
    """Run a command inside the node's network namespace (as a pod's neighbour would); its stdout."""
    proc = netns.run(*argv)
    assert proc.returncode == 0, f"{argv} in the node's namespace failed: {proc.stderr}"
    return proc.stdout


def http_get_in_node(url: str) -> tuple[int, str]:
    """GET ``url`` from inside the node's network namespace; (status, body), status 0 if unreachable."""
    code = (
        "import sys, urllib.request as u\n"
        "try:\n"
        "    r = u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=3)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except u.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
        "except OSError as e:\n"
        "    print(0); print(e)\n"
    )
    out = netns.run(sys.executable, "-c", code, url).stdout
    status, _, body = out.partition("\n")
    return int(status or 0), body


def wait_for(probe: Any, timeout: float, what: str) -> Any:
    """``eventually`` with the generous deadlines a loaded machine needs."""
    return eventually(probe, timeout, interval=0.5, what=what)


def kill_container(pod: dict[str, Any]) -> list[int]:
    """SIGKILL every process of the pod's first container, found through its cgroup (as the kernel would)."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    uid = pod["metadata"]["uid"]
    found: list[int] = []
    for top in cgroups.hierarchies():
        for procs in (top / cgroups.ROOT).glob(f"kubepods*/**/pod{uid}/{cid}/cgroup.procs"):
            found += [int(p) for p in procs.read_text().split()]
    for pid in set(found):
        os.kill(pid, signal.SIGKILL)
    assert found, f"no process of container {cid} of pod {pod['metadata']['name']}"
    return sorted(set(found))


def cgroup_memory_limit(pod: dict[str, Any], whole_pod: bool = False) -> int:
    """The memory limit the kernel holds the pod's running first container (or the whole pod) to, in
    bytes: its cgroup's ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1)."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    uid = pod["metadata"]["uid"]
    top, name = (cgroups.FS, "memory.max") if cgroups.is_v2() else (cgroups.FS / "memory", "memory.limit_in_bytes")
    where = f"kubepods*/**/pod{uid}/{name}" if whole_pod else f"kubepods*/**/pod{uid}/{cid}/{name}"
    found = list((top / cgroups.ROOT).glob(where))
    assert len(found) == 1, f"the cgroup of {where}: {found}"
    text = found[0].read_text().strip()
    return -1 if text == "max" else int(text)
