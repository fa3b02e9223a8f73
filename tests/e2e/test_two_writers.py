"""Two operators that both believe they act (standalone, no peering) on one Incident and one OOM kill.

Leader election can fail open: two replicas of the same priority, peering switched off, a
partition that leaves two leaders. The operator's promise then rests on the API server alone:
a step is claimed under the Incident's resourceVersion, a claim of another pod is not taken
over while its lease holds, and the workload's patch carries ``test`` preconditions on what its
plan read. Each operator here talks to the real API server through a request log of its own
(``tests/e2e/request_log.py``), so the test sees their conflicts on the wire (409 on the
Incident's status), counts the receivers' pages per level and the applied workload patches: every
step and the raise exactly once.
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
def writers(
    control_plane: devcluster.ControlPlane, crds: None, tmp_path: pathlib.Path
) -> cabc.Iterator[list[tuple[OperatorProcess, RequestLog]]]:
    """Two standalone operators of two pods, each behind its own request log."""
    pairs = []
    try:
        for pod in ("writer-a", "writer-b"):
            (tmp_path / pod).mkdir()
            wire = RequestLog(control_plane.kubeconfig, tmp_path / pod)
            env = {"POD_ID": pod, "ONCALL_TICK_SECONDS": "0.5"}
            pairs.append((OperatorProcess(wire.kubeconfig, tmp_path / f"{pod}.log", env), wire))
        yield pairs
    finally:
        for process, wire in pairs:
            process.stop()
            wire.close()


def incident_writes(requests: list[Request], namespace: str) -> list[int]:
    """The answers to status writes of Incidents in ``namespace``."""
    prefix = f"/apis/oncall.dev/v1alpha1/namespaces/{namespace}/incidents/"
    return [
        r.status for r in requests if r.method == "PUT" and r.path.startswith(prefix) and r.path.endswith("/status")
    ]


def test_two_acting_operators_send_every_step_and_raise_once(
    kubectl: Kubectl,
    control_plane: devcluster.ControlPlane,
    namespace: str,
    peer: Peer,
    inbox: tuple[Inbox, int],
    writers: list[tuple[OperatorProcess, RequestLog]],
) -> None:
    levels = ("6s", "10s")
    esc.setup(kubectl, namespace, peer, inbox[1], levels=levels, ack_timeout="5m")  # no ack reminders meanwhile
    admin = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    admin.user_agent = AGENT
    cluster = Cluster(admin, kubectl)
    cluster.apply(namespace, runbook(), workload("Deployment", "web", "200Mi", request="100Mi"))
    for process, _ in writers:
        process.start()
    marks = [wire.mark() for _, wire in writers]

    # one OOM kill, seen by both
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=web"))
    cluster.wait_limit("Deployment", namespace, "web", "300Mi")
    cluster.wait_incident(namespace, "Deployment", "web", "mitigated", phase="Mitigated")
    # both have judged the kill: one raised it, the other found it done
    eventually(lambda: all(f"OOM {namespace}/" in p.text() for p, _ in writers), 60, what="both judging the kill")
    # one Incident, escalated by both
    esc.open_incident(kubectl, namespace)
    eventually(lambda: ("page/L3/loop0", "slack", "Delivered") in esc.steps(kubectl, namespace), 60, what="L3")
    esc.loop_passed(kubectl, namespace, peer, esc.due(kubectl, namespace, levels[1]))  # anything twice: sent by now

    assert (
        memory(cluster.workload("Deployment", namespace, "web")["spec"]["template"]["spec"]["containers"][0]) == "300Mi"
    )
    inc = cluster.incident(namespace, "Deployment", "web") or {}
    assert inc["status"]["guardrails"]["raises"] == 1, inc["status"]["guardrails"]
    deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    sent = [wire.all_since(mark) for (_, wire), mark in zip(writers, marks, strict=True)]
    applied = [
        [r.status for r in s if r.method == "PATCH" and r.path == deployment and "dryRun" not in r.query] for s in sent
    ]
    assert sum(statuses.count(200) for statuses in applied) == 1, applied  # the raise, by one of them

    assert esc.pages_per_level(kubectl, namespace, peer) == esc.ONCE_EACH
    assert len(inbox[0].messages) == 1  # L1's email
    claims = [process.text().count(f"Incident {namespace}/checkout-down: claimed") for process, _ in writers]
    writes = [incident_writes(s, namespace) for s in sent]
    conflicts = sum(w.count(409) for w in writes)
    print(f"\ntwo writers (a, b): claims {claims}, Incident status writes {[len(w) for w in writes]}, 409s {conflicts}")
    assert conflicts >= 1, writes  # they did race: the API server refused the stale writer
