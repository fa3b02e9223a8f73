"""On a real node: the kernel OOM-kills a container at its limit, and the operator fixes it.

Every other OOM test writes the kill into pod status itself; here containerd and runc run the
memory hog (``hack/images/memory-hog``) under a 64Mi cgroup limit, the kernel kills it, the
kubelet reports ``OOMKilled``/137, the operator (a child process, as in the other e2e tests)
raises the workload's limit, and the rolled-out pod then holds its memory for an explicit 30 s
observation window without another kill. Then the chart: ``helm install`` with the operator's
image built here, two real pods under Pod Security ``restricted``, one acting, ``/readyz``
through the Service from the node's network namespace, the same OOM remediated by the chart's
operator, and a killed container of the active replica handing over to the other one.
"""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator.devcluster import images
from tests.e2e.conftest import OperatorProcess
from tests.e2e.helm_support import CHART, Helm
from tests.e2e.node_support import (
    NodeCluster,
    assert_pods_not_written,
    hog,
    http_get_in_node,
    kernel_oom_kills,
    kill_container,
    restarts,
    running_ready,
    wait_for,
)
from tests.e2e.oom_support import memory, runbook

pytestmark = pytest.mark.e2e
HOG_MIB = 96  # killed under 64Mi; 128Mi holds it (the Go runtime adds a few MiB)
LIMIT, RAISED = "64Mi", "128Mi"
RULE = {"factor": 2, "minStep": "64Mi", "maxLimit": "512Mi"}
WINDOW = 30.0


@pytest.fixture
def node_ns(node_cluster: NodeCluster) -> Iterator[str]:
    name = f"real-node-{uuid.uuid4().hex[:6]}"
    node_cluster.kubectl.run("create", "namespace", name)
    yield name
    node_cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def wait_kernel_oom(nc: NodeCluster, ns: str, app: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        for pod in nc.cluster.pods(ns, f"app={app}"):
            kills = kernel_oom_kills(pod)
            if kills and memory(pod["spec"]["containers"][0]) == LIMIT:
                return pod
        return None

    pod = wait_for(probe, 180, f"the kernel to OOM-kill {app} at {LIMIT}")
    kill = kernel_oom_kills(pod)[0]
    assert kill["exitCode"] == 137, kill
    return pod


def wait_raised_pod_running(nc: NodeCluster, ns: str, kind: str, app: str) -> dict[str, Any]:
    def limit_raised() -> bool:
        obj = nc.cluster.workload(kind, ns, app)
        return memory(obj["spec"]["template"]["spec"]["containers"][0]) == RAISED

    wait_for(limit_raised, 120, f"the operator to raise {kind} {app} to {RAISED}")

    def only_new_pod_running() -> dict[str, Any] | None:
        pods = nc.cluster.pods(ns, f"app={app}")
        if len(pods) == 1 and memory(pods[0]["spec"]["containers"][0]) == RAISED and running_ready(pods[0]):
            return pods[0]
        return None

    return wait_for(only_new_pod_running, 180, f"the {RAISED} pod of {app} running, the old one gone")


def observe_no_kill(nc: NodeCluster, ns: str, pods: list[dict[str, Any]]) -> None:
    """The explicit observation window: every pod keeps running, no restart, no OOM kill."""
    deadline = time.monotonic() + WINDOW
    while time.monotonic() < deadline:
        for pod in pods:
            current = pod_named(nc, ns, pod["metadata"]["name"])
            assert current["metadata"]["uid"] == pod["metadata"]["uid"]
            assert restarts(current) == 0 and not kernel_oom_kills(current), current["status"]
        time.sleep(1)


def test_kernel_oom_kills_are_remediated(node_cluster: NodeCluster, node_ns: str, tmp_path: Any) -> None:
    """A Deployment and a StatefulSet side by side (their observation windows overlap)."""
    nc, kinds = node_cluster, {"Deployment": "hog-deployment", "StatefulSet": "hog-statefulset"}
    nc.cluster.apply(node_ns, runbook("oom", RULE, cooldown="10m"))  # one raise: later kills of the old pod wait
    log = tmp_path / "operator.log"
    env = {"ONCALL_NAMESPACE": node_ns}
    op = OperatorProcess(nc.plane.kubeconfig, log, env=env, args=("--namespace", node_ns)).start()
    try:
        nc.cluster.apply(node_ns, *(hog(kind, app, LIMIT, HOG_MIB) for kind, app in kinds.items()))
        for kind, app in kinds.items():
            killed = wait_kernel_oom(nc, node_ns, app)
            print(f"{kind}: kernel OOM kill of {killed['metadata']['name']}: {kernel_oom_kills(killed)[0]}")
        pods = [wait_raised_pod_running(nc, node_ns, kind, app) for kind, app in kinds.items()]
        observe_no_kill(nc, node_ns, pods)
    finally:
        op.stop()
        if "Traceback" in log.read_text():
            print(log.read_text()[-4000:])
    for kind, app in kinds.items():
        incident = nc.cluster.incident(node_ns, kind, app)
        assert incident, f"no Incident for {kind} {app}"
        applied = [a for a in incident["status"].get("actions") or [] if a["state"] == "Applied"]
        assert len(applied) == 1 and RAISED in applied[0]["after"], incident["status"]
    incidents = nc.cluster.custom.list_namespaced_custom_object("oncall.dev", "v1alpha1", node_ns, "incidents")["items"]
    assert len(incidents) == 2, [i["metadata"]["name"] for i in incidents]  # one per workload
    assert_pods_not_written(nc.cluster, node_ns)


def test_chart_runs_as_real_pods_acts_once_and_hands_over(node_cluster: NodeCluster, node_ns: str) -> None:
    nc, kubectl = node_cluster, node_cluster.kubectl
    helm = Helm(nc.plane.bindir / "helm")
    release, home = f"oc{uuid.uuid4().hex[:6]}", f"oncall-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", home)
    kubectl.run("label", "namespace", home, "pod-security.kubernetes.io/enforce=restricted")
    sets = ("image.pullPolicy=Never", f"operator.watchNamespaces={{{node_ns}}}")
    try:
        helm.run(
            "install",
            release,
            str(CHART),
            "--namespace",
            home,
            "--kubeconfig",
            str(nc.plane.kubeconfig),
            *[x for s in sets for x in ("--set", s)],
        )
        selector = f"app.kubernetes.io/instance={release}"

        def both_ready() -> list[dict[str, Any]] | None:
            pods = nc.cluster.pods(home, selector)
            return pods if len(pods) == 2 and all(running_ready(p) for p in pods) else None

        pods = wait_for(both_ready, 240, "both replicas of the chart running and ready")
        for pod in pods:  # restricted Pod Security admitted them, as the image's user
            assert pod["spec"]["securityContext"]["runAsUser"] == 65532
            assert pod["spec"]["containers"][0]["image"] == f"oncall-operator:{images.VERSION}"

        def active() -> list[str]:
            return [p["metadata"]["name"] for p in nc.cluster.pods(home, selector) if acting(p)]

        leader = wait_for(lambda: active() if len(active()) == 1 else None, 60, "exactly one active replica")[0]
        service = kubectl.json("get", "service", "-n", home, "-l", selector)["items"][0]
        status, body = http_get_in_node(f"http://{service['spec']['clusterIP']}:8080/readyz")
        assert status == 200, (status, body)

        nc.cluster.apply(node_ns, runbook("oom", RULE, cooldown="10m"))
        nc.cluster.apply(node_ns, hog("Deployment", "memory-hog", LIMIT, HOG_MIB))
        wait_kernel_oom(nc, node_ns, "memory-hog")
        wait_raised_pod_running(nc, node_ns, "Deployment", "memory-hog")
        assert nc.cluster.incident(node_ns, "Deployment", "memory-hog")
        incidents = nc.cluster.custom.list_namespaced_custom_object("oncall.dev", "v1alpha1", node_ns, "incidents")
        assert len(incidents["items"]) == 1
        assert_pods_not_written(nc.cluster, node_ns)

        victim = next(p for p in nc.cluster.pods(home, selector) if p["metadata"]["name"] == leader)
        killed_at = time.monotonic()
        kill_container(victim)
        other = wait_for(lambda: [n for n in active() if n != leader] or None, 120, "the other replica to take over")[0]
        print(f"chart: {leader}'s container killed; {other} active {time.monotonic() - killed_at:.1f}s later")
        wait_for(lambda: restarts(pod_named(nc, home, leader)) >= 1, 60, f"{leader} restarted by the kubelet")
    finally:
        helm.run("uninstall", release, "--namespace", home, "--kubeconfig", str(nc.plane.kubeconfig), check=False)
        kubectl.run("delete", "namespace", home, "--wait=false", check=False)


def acting(pod: dict[str, Any]) -> bool:
    """Whether the replica says, on its /metrics (asked from the node's namespace), that it acts."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip or not running_ready(pod):
        return False
    status, body = http_get_in_node(f"http://{ip}:8080/metrics")
    return status == 200 and "\noncall_operator_active 1.0" in f"\n{body}"


def pod_named(nc: NodeCluster, namespace: str, name: str) -> dict[str, Any]:
    raw = nc.cluster.core.read_namespaced_pod(name, namespace, _preload_content=False)
    return dict(json.loads(raw.data))
