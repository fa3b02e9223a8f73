"""The operator's own pod watch, against the real API server: big pods, pages, stand-by.

The last test runs the whole operator (the shared ``operator`` fixture; last, so that it does not
act on the other tests' pods) on a pod whose JSON is larger than the 64 KiB a line may have in
aiohttp's ``readline``. The others run the watch of
:mod:`oncall_operator.adapters.podwatch` in the test's own event loop, on the test's namespace,
with a callback that records which pods it was handed: the kills on the first list are handed
over, page by page (``continue`` tokens), then those the watch sees; a replica that does not act
watches nothing, and lists afresh whenever it starts to act. Kills made while the operator was
down are handled from its first list (``test_oom_remediation.py``, the restarts test).

A relist after 410 Gone is not provoked here: this API server answers an old resourceVersion
(even ``1``) and an old continue token from its watch cache, also after an etcd compaction
(tried), and its cache keeps every event younger than 75 s. The stream's splitting and decoding
are unit-tested (``tests/unit/test_listwatch.py``).
"""

import asyncio
import contextlib
import json
import logging
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from oncall_operator.adapters import apiserver, kube, metrics, peering, podwatch
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.oom_support import AGENT, Cluster, runbook, workload
from tests.e2e.watch_support import WAIT, running, until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(control_plane: devcluster.ControlPlane, kubectl: Kubectl) -> Cluster:
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    client.user_agent = AGENT
    return Cluster(client, kubectl)


def bare(name: str) -> dict[str, Any]:
    """A pod without an owner; no scheduler runs here, so it stays Pending until the test plays the kubelet."""
    spec = {"containers": [{"name": "app", "image": "registry.invalid/x:1"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def make_pods(cluster: Cluster, namespace: str, count: int) -> dict[str, dict[str, Any]]:
    for i in range(count):
        cluster.core.create_namespaced_pod(namespace, bare(f"p{i}"))
    return {p["metadata"]["name"]: p for p in cluster.pods(namespace)}


class Watch:
    """A pod watch on one namespace, run in the test's loop; ``handed`` gets each pod name handed over."""

    def __init__(self, control_plane: devcluster.ControlPlane, namespace: str, page: int) -> None:
        client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
        self.api = apiserver.Api(kube.Kube(client))
        self.handed: asyncio.Queue[str] = asyncio.Queue()
        self.watch = podwatch.PodWatch(self.api, [namespace], self.handle, page=page)
        [self.follower] = self.watch.followers

    async def handle(self, pod: dict[str, Any]) -> None:
        await self.handed.put(pod["metadata"]["name"])

    async def next(self, count: int = 1) -> list[str]:
        return sorted([await asyncio.wait_for(self.handed.get(), WAIT) for _ in range(count)])

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return running(self.watch, self.watch.close, self.api)


def restarts(reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("oncall_pod_watch_restarts_total", {"reason": reason}) or 0.0


async def test_kills_on_the_list_are_handed_over_page_by_page_then_the_watch_goes_on(
    cluster: Cluster,
    namespace: str,
    control_plane: devcluster.ControlPlane,
    acting: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=podwatch.__name__)
    pods = make_pods(cluster, namespace, 5)
    for name in ("p1", "p3"):
        cluster.kill(namespace, pods[name], restarts=0, down=True)
    w = Watch(control_plane, namespace, page=2)
    lists = restarts("list")
    async with w.running():
        assert await w.next(2) == ["p1", "p3"]  # on pages 1 and 2 of the list
        listed = f"pod watch /api/v1/namespaces/{namespace}/pods: listed 5 pods in 3 page(s)"
        await until(lambda: listed in caplog.text, "the last page (the pods are handed over while it is read)")
        assert restarts("list") == lists + 1
        version = w.follower.resource_version
        await asyncio.to_thread(cluster.kill, namespace, pods["p4"], 1)  # now the watch sees it
        assert await w.next() == ["p4"]
        assert w.handed.empty() and w.follower.resource_version != version


async def test_a_standby_watches_nothing_and_lists_afresh_each_time_it_starts_to_act(
    cluster: Cluster,
    namespace: str,
    control_plane: devcluster.ControlPlane,
    acting: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=podwatch.__name__)
    peering.set_acting(False)
    pods = make_pods(cluster, namespace, 2)
    w = Watch(control_plane, namespace, page=500)
    async with w.running():
        await asyncio.to_thread(cluster.kill, namespace, pods["p0"], 1)  # killed while this replica stands by
        assert w.follower.resource_version is None and "listing" not in caplog.text
        peering.set_acting(True)
        assert await w.next() == ["p0"]  # from the first list once acting
        peering.set_acting(False)
        await until(lambda: "standing by" in caplog.text, "the watch to close on stand-by")
        await asyncio.to_thread(cluster.kill, namespace, pods["p1"], 1)
        peering.set_acting(True)  # a new term: a fresh list shows both kills
        assert await w.next(2) == ["p0", "p1"]


def test_an_oom_killed_pod_larger_than_64_kib_is_remediated(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    fat = workload("Deployment", "fat", "100Mi")
    fat["spec"]["template"]["metadata"]["annotations"] = {f"example.com/blob-{i}": "x" * 40_000 for i in range(3)}
    cluster.apply(namespace, runbook(), fat)
    pod = cluster.wait_pod(namespace, "app=fat")
    assert len(json.dumps(pod)) > 64 * 1024  # one watch event, one line over the limit
    cluster.kill(namespace, pod)
    cluster.wait_limit("Deployment", namespace, "fat", "200Mi")
    cluster.wait_incident(namespace, "Deployment", "fat", "mitigated", phase="Mitigated")
    cluster.assert_pods_untouched(namespace)
