"""In-place resize on the simulated status path: the resize, then what the kubelet says about it.

The API server validates the resize (no node needed); the test plays the kubelet's
``PodResizePending`` (Infeasible, Deferred), its running resources (the resize done), or a
kubelet without resize support. The same set-up as ``test_oom_owners.py`` (its fixtures: a
module-scoped operator of this module's own); every pod is checked written by the operator
through its ``resize`` subresource only. The real node's side is ``test_real_node_oom.py``.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import eventually
from tests.e2e import test_oom_owners as same_setup
from tests.e2e.conftest import OperatorProcess
from tests.e2e.oom_support import ALLOWED_POD_MANAGERS, Cluster, memory, runbook, workload
from tests.e2e.test_oom_owners import get

pytestmark = pytest.mark.e2e
cluster, op = same_setup.cluster, same_setup.op


@pytest.fixture(autouse=True)
def only_resized(cluster: Cluster, namespace: str, op: OperatorProcess) -> Iterator[None]:
    """The operator wrote to pods through their resize subresource only (a runbook's strategy: InPlace)."""
    yield
    for pod in cluster.pods(namespace):
        for entry in pod["metadata"].get("managedFields") or ():
            if entry["manager"] in ALLOWED_POD_MANAGERS or entry["manager"].startswith("kubectl"):
                continue
            assert (entry["manager"], entry.get("subresource")) == ("oncall-operator", "resize"), entry


def test_in_place_resize_then_the_template_when_the_node_cannot(cluster: Cluster, namespace: str) -> None:
    """The API server validates the resize without a node; the test plays the kubelet's PodResizePending."""
    cluster.apply(namespace, runbook(rule={"strategy": "InPlace"}), workload("Deployment", "web", "100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    cluster.make_ready(namespace, pod)
    cluster.kill(namespace, pod, resources={"limits": {"memory": "100Mi"}})
    name = pod["metadata"]["name"]

    def resized() -> dict[str, Any] | None:
        found = [p for p in cluster.pods(namespace, "app=web") if p["metadata"]["name"] == name]
        return found[0] if found and memory(found[0]["spec"]["containers"][0]) == "200Mi" else None

    eventually(resized, 30, what="the pod resized in place to 200Mi")
    inc = cluster.wait_incident(namespace, "Deployment", "web", "resized", phase="Mitigated", action="ResizedInPlace")
    assert "the template is unchanged, recommended: raise memory" in inc["status"]["actions"][-1]["reason"]
    template = get(cluster, namespace, "deployment/web")["spec"]["template"]
    assert memory(template["spec"]["containers"][0]) == "100Mi"  # no rollout

    # the kubelet cannot fit it: the template is patched instead, to what the resize wanted
    pending = {
        "type": "PodResizePending",
        "status": "True",
        "reason": "Infeasible",
        "message": "Node didn't have enough capacity: memory, requested: 209715200, capacity: 104857600",
    }
    cluster.core.patch_namespaced_pod_status(name, namespace, {"status": {"conditions": [pending]}})
    cluster.wait_limit("Deployment", namespace, "web", "200Mi")
    inc = cluster.wait_incident(namespace, "Deployment", "web", "fallback", action="ResizeInfeasible")
    assert [a["reason"].split(":")[0] for a in inc["status"]["actions"]] == ["ResizedInPlace", "ResizeInfeasible"]
    assert inc["status"]["occurrences"] == 1


def resized_in_place(cluster: Cluster, namespace: str, deadline: str) -> tuple[dict[str, Any], str]:
    """A Deployment of one pod OOM-killed at 100Mi and resized in place to 200Mi; the pod and its kill's time."""
    book = runbook(rule={"strategy": "InPlace"}, resizeDeadline=deadline)
    cluster.apply(namespace, book, workload("Deployment", "web", "100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    cluster.make_ready(namespace, pod)
    finished = cluster.kill(namespace, pod, resources={"limits": {"memory": "100Mi"}})
    name = pod["metadata"]["name"]

    def resized() -> dict[str, Any] | None:
        found = [p for p in cluster.pods(namespace, "app=web") if p["metadata"]["name"] == name]
        return found[0] if found and memory(found[0]["spec"]["containers"][0]) == "200Mi" else None

    return eventually(resized, 30, what="the pod resized in place to 200Mi"), finished


def test_in_place_deferred_past_its_deadline_patches_the_template(cluster: Cluster, namespace: str) -> None:
    """Nothing changes on the pod once the kubelet defers: the operator looks again at resizeDeadline by itself."""
    pod, _ = resized_in_place(cluster, namespace, "10s")
    deferred = {
        "type": "PodResizePending",
        "status": "True",
        "reason": "Deferred",
        "message": "Node didn't have enough resource: memory",
    }
    cluster.core.patch_namespaced_pod_status(pod["metadata"]["name"], namespace, {"status": {"conditions": [deferred]}})
    cluster.wait_limit("Deployment", namespace, "web", "200Mi")
    inc = cluster.wait_incident(namespace, "Deployment", "web", "deferred, then the template", action="ResizeDeferred")
    assert (
        "is not done 10s after it was applied (PodResizePending Deferred: Node didn't"
        in inc["status"]["actions"][-1]["reason"]
    )
    assert "ResizePending" in [e["type"] for e in inc["status"]["timeline"]]
    assert [a["reason"].split(":")[0] for a in inc["status"]["actions"]] == ["ResizedInPlace", "ResizeDeferred"]


def test_in_place_completed_is_recorded_before_the_incident_resolves(cluster: Cluster, namespace: str) -> None:
    pod, finished = resized_in_place(cluster, namespace, "10m")
    cluster.kill(namespace, pod, finished=finished, resources={"limits": {"memory": "200Mi"}})  # the kubelet did it
    inc = cluster.wait_incident(namespace, "Deployment", "web", "resolved after the resize", phase="Resolved")
    types = [e["type"] for e in inc["status"]["timeline"]]
    assert "ResizeCompleted" in types and types.index("ResizeCompleted") < types.index("Resolved"), types
    template = get(cluster, namespace, "deployment/web")["spec"]["template"]
    assert memory(template["spec"]["containers"][0]) == "100Mi"  # no rollout, ever


def test_in_place_refused_by_the_api_server_patches_the_template(cluster: Cluster, namespace: str) -> None:
    """A kubelet that reports no running resources cannot resize: the API server refuses, the template is patched."""
    cluster.apply(namespace, runbook(rule={"strategy": "InPlace"}), workload("Deployment", "web", "100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    cluster.make_ready(namespace, pod)
    cluster.kill(namespace, pod)  # no resources in the container status
    cluster.wait_limit("Deployment", namespace, "web", "200Mi")
    inc = cluster.wait_incident(namespace, "Deployment", "web", "template instead", action="Applied")
    assert "without support for resize; instead: raise memory" in inc["status"]["actions"][-1]["reason"]
    killed = [p for p in cluster.pods(namespace, "app=web") if p["metadata"]["uid"] == pod["metadata"]["uid"]]
    assert all(memory(p["spec"]["containers"][0]) == "100Mi" for p in killed)  # not resized (or replaced)
