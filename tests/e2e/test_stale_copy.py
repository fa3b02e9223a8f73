"""A cached copy made stale on purpose is refused by the API server and read again: forced, not raced.

The operator answers from what its watches told it: the open Incidents' bodies
(``executor/open_incidents.py``) and the workloads (``adapters/caches.py``). The operator runs
behind the request log (``tests/e2e/request_log.py``), which here holds back the events of one
kind's watches while the test changes an object of that kind with its own client: the operator's
copy is then stale for as long as the test says, whatever the machine's speed. What must follow
is on the wire: the write from the stale copy refused (409 for an Incident's status under its
resourceVersion, 422 for a workload patch whose ``test`` preconditions fail), a GET, and the
write again from what it answered; and the page or the raise sent once.
"""

import collections.abc as cabc
import pathlib

import kubernetes
import pytest

from oncall_operator import devcluster
from tests.conftest import eventually
from tests.e2e import test_escalation as esc
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.oom_support import AGENT, Cluster, memory, runbook, workload
from tests.e2e.request_log import Request, RequestLog
from tests.peers import Inbox, Peer

pytestmark = pytest.mark.e2e


@pytest.fixture
def wire(control_plane: devcluster.ControlPlane, tmp_path: pathlib.Path) -> cabc.Iterator[RequestLog]:
    log = RequestLog(control_plane.kubeconfig, tmp_path)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def behind(wire: RequestLog, crds: None, tmp_path: pathlib.Path) -> cabc.Iterator[OperatorProcess]:
    process = OperatorProcess(wire.kubeconfig, tmp_path / "operator.log", {"ONCALL_TICK_SECONDS": "0.5"})
    try:
        yield process
    finally:
        process.stop()


def calls(requests: list[Request], path: str) -> list[tuple[str, bool, int]]:
    """(method, dry-run, status) of the requests to ``path`` or its subresources."""
    return [(r.method, "dryRun" in r.query, r.status) for r in requests if r.path.startswith(path)]


def in_order(seen: list[tuple[str, bool, int]], *wanted: tuple[str, bool, int]) -> bool:
    """Whether ``wanted`` occur in ``seen`` in this order (others may come between)."""
    rest = iter(seen)
    return all(any(w == s for s in rest) for w in wanted)


def test_a_stale_incident_copy_costs_a_409_and_a_read_never_a_second_page(
    kubectl: Kubectl, namespace: str, peer: Peer, inbox: tuple[Inbox, int], wire: RequestLog, behind: OperatorProcess
) -> None:
    levels = ("12s", "60s")
    esc.setup(kubectl, namespace, peer, inbox[1], levels=levels, ack_timeout="5m")
    behind.start()
    esc.open_incident(kubectl, namespace)
    eventually(lambda: ("page/L1/loop0", "email", "Delivered") in esc.steps(kubectl, namespace), 60, what="L1")
    with wire.watches_held("/incidents"):
        kubectl.run("label", "incident/checkout-down", "-n", namespace, "oncall.test/touched=yes")  # behind its back
        mark = wire.mark()
        eventually(lambda: ("page/L2/loop0", "slack", "Delivered") in esc.steps(kubectl, namespace), 60, what="L2")
        seen = calls(wire.all_since(mark), f"/apis/oncall.dev/v1alpha1/namespaces/{namespace}/incidents/checkout-down")
    print(f"\nstale Incident copy, on the wire: {seen}")
    assert seen[0] == ("PUT", False, 409), seen  # the claim from the copy the label made stale
    assert in_order(seen, ("PUT", False, 409), ("GET", False, 200), ("PUT", False, 200)), seen
    assert esc.pages_per_level(kubectl, namespace, peer)[2] == esc.ONCE_EACH[2]  # L2 once, for Ada and Bob


def test_a_stale_workload_copy_is_refused_by_its_preconditions_and_read_again(
    kubectl: Kubectl, control_plane: devcluster.ControlPlane, namespace: str, wire: RequestLog, behind: OperatorProcess
) -> None:
    admin = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    admin.user_agent = AGENT
    cluster = Cluster(admin, kubectl)
    behind.start()
    cluster.apply(namespace, runbook(), workload("Deployment", "web", "200Mi"))
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=web"))  # the first raise: the cache holds its answer
    cluster.wait_limit("Deployment", namespace, "web", "300Mi")
    pod = cluster.wait_pod(namespace, "app=web", limit="300Mi")
    eventually(lambda: f"OOM {namespace}/" in behind.text(), 60, what="the first kill recorded")
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    with wire.watches_held("/deployments"):
        kubectl.run("annotate", "deployment/web", "-n", namespace, "team=shop")  # behind the cache's back
        mark = wire.mark()
        cluster.kill(namespace, pod)
        raised = cluster.wait_limit("Deployment", namespace, "web", "400Mi")
        seen = calls(wire.all_since(mark), path)
    print(f"\nstale workload copy, on the wire: {seen}")
    # the first write is the dry-run from the stale copy, and its preconditions fail (another flow, the
    # rollout's settle check, may read the Deployment before it: a read is no write from a stale copy)
    assert next(s for s in seen if s[0] == "PATCH") == ("PATCH", True, 422), seen
    assert in_order(seen, ("PATCH", True, 422), ("GET", False, 200), ("PATCH", False, 200)), seen
    assert [s for s in seen if s[:2] == ("PATCH", False)] == [("PATCH", False, 200)]  # one raise
    assert raised["metadata"]["annotations"]["team"] == "shop"
    assert memory(raised["spec"]["template"]["spec"]["containers"][0]) == "400Mi"
