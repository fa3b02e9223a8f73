"""OOM remediation as users meet it: DaemonSets, CronJobs, bare Pods, a stuck rollout, a reopened round.

Real API server and controllers (the DaemonSet, Job, CronJob and Deployment controllers make
the pods); the test plays the kubelet (``tests/e2e/oom_support.py``). The DaemonSet needs a
node to place its pod on: the test registers a Node object (no kubelet behind it; the pod
tolerates its not-ready taints) and removes it at the end. Pages go to a local webhook
receiver (``tests/peers.py``) through a policy whose ``warning`` severity only notifies: a
human needed must page anyway.
"""

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.oom_support import AGENT, Cluster, memory, runbook, workload
from tests.e2e.test_runbook_actions import post_alert
from tests.peers import Peer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(control_plane: devcluster.ControlPlane, kubectl: Kubectl) -> Cluster:
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    client.user_agent = AGENT
    return Cluster(client, kubectl)


@pytest.fixture(scope="module")
def op(
    control_plane: devcluster.ControlPlane, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("oom-owners") / "operator.log"
    process = OperatorProcess(control_plane.kubeconfig, log, env={"ONCALL_TICK_SECONDS": "0.5"})
    process.start()
    try:
        yield process
    finally:
        process.stop()
        if "Traceback" in log.read_text():
            print(f"operator log (tail):\n{log.read_text()[-6000:]}")


@pytest.fixture(autouse=True)
def pods_untouched(
    cluster: Cluster, namespace: str, op: OperatorProcess, request: pytest.FixtureRequest
) -> Iterator[None]:
    yield
    cluster.assert_pods_untouched(namespace)


def pager(peer: Peer, *, rollout_deadline: str = "1h", **rule: Any) -> list[dict[str, Any]]:
    """A schedule, a webhook channel and a policy (warning: notify only), and a runbook that refers to it."""
    book = runbook(rule=rule or None, rolloutDeadline=rollout_deadline)
    book["spec"]["escalationPolicyRef"] = {"name": "pager"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook", "labels": {"oncall.dev/notifier": "true"}},  # opted in: channels read it
            "stringData": {"url": peer.url("/hook/ok")},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "OnCallSchedule",
            "metadata": {"name": "team"},
            "spec": {
                "timeZone": "UTC",
                "roles": [
                    {
                        "name": "primary",
                        "layers": [{"name": "l", "rotation": {"participants": ["Ada"], "start": "2026-01-05"}}],
                    }
                ],
                "members": [{"name": "Ada", "email": "ada@example.com"}],
            },
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "pager"},
            "spec": {
                "ackTimeout": "1h",
                "levels": [
                    {"name": "l1", "after": "0", "targets": [{"schedule": {"name": "team", "role": "primary"}}]},
                    {"name": "l2", "after": "1h", "targets": [{"schedule": {"name": "team", "role": "primary"}}]},
                ],
                "channels": [{"name": "hook", "type": "Webhook", "secretRef": {"name": "hook", "key": "url"}}],
                "severities": [
                    {"severity": "warning", "response": "Notify", "responseTime": "1h", "channels": ["hook"]}
                ],
            },
        },
        book,
    ]


def get(cluster: Cluster, namespace: str, resource: str) -> dict[str, Any]:
    return dict(cluster.kubectl.json("get", resource, "-n", namespace))


def needs_human(inc: dict[str, Any]) -> tuple[str, str]:
    [cond] = [c for c in inc["status"]["conditions"] if c["type"] == "NeedsHuman"]
    return cond["status"], cond["reason"]


def pages(inc: dict[str, Any]) -> list[tuple[str, int, str]]:
    esc = (inc.get("status") or {}).get("escalation") or {}
    return [(n["key"], n["level"], n["result"]) for n in esc.get("notifications") or () if n["kind"] == "page"]


@pytest.fixture
def node(cluster: Cluster, namespace: str) -> Iterator[str]:
    name = f"oom-node-{uuid.uuid4().hex[:6]}"
    cluster.kubectl.run(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"oncall-test": namespace}}}
        ),
    )
    yield name
    cluster.kubectl.run("delete", "node", name, "--wait=false", check=False)


def gets_for_kill(op: OperatorProcess, namespace: str, pod: dict[str, Any]) -> int:
    """How many GETs the operator's answer to the kill took (its log line): 0 when the caches answered."""
    where = re.escape(f"OOM {namespace}/{pod['metadata']['name']}[app]: Apply ")
    found = eventually(lambda: re.search(where + r".*; (\d+) GETs\)", op.log.read_text()), 30, what="the kill logged")
    return int(found.group(1))


def test_daemonset_template_is_raised(cluster: Cluster, namespace: str, node: str, op: OperatorProcess) -> None:
    ds = workload("DaemonSet", "agent", "200Mi")
    ds["spec"].pop("replicas")
    ds["spec"]["template"]["spec"].update(nodeSelector={"oncall-test": namespace}, tolerations=[{"operator": "Exists"}])
    cluster.apply(namespace, runbook(), ds)
    pod = cluster.wait_pod(namespace, "app=agent")
    cluster.kill(namespace, pod)

    def raised() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "daemonset/agent")
        return obj if memory(obj["spec"]["template"]["spec"]["containers"][0]) == "300Mi" else None

    eventually(raised, 30, what="DaemonSet limit 300Mi")
    inc = cluster.wait_incident(namespace, "DaemonSet", "agent", "raised", action="Applied")
    assert inc["status"]["actions"][-1]["after"] == "limits.memory=300Mi"
    cluster.wait_pod(namespace, "app=agent", limit="300Mi")  # the DaemonSet controller rolls it out
    assert gets_for_kill(op, namespace, pod) == 0  # the DaemonSet, its namespace, its Incident: all cached


def test_cronjob_job_template_is_raised_and_the_running_job_left_alone(
    cluster: Cluster, namespace: str, op: OperatorProcess
) -> None:
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [
            {"name": "app", "image": "registry.invalid/report:1", "resources": {"limits": {"memory": "200Mi"}}}
        ],
    }
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 1 1 *", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}},
    }
    cluster.apply(namespace, runbook(), cron)
    uid = get(cluster, namespace, "cronjob/nightly")["metadata"]["uid"]
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": uid, "controller": True}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "nightly-manual", "ownerReferences": [owner]},
        "spec": {"template": {"spec": pod_spec}},
    }
    cluster.apply(namespace, job)
    before = get(cluster, namespace, "job/nightly-manual")
    killed = cluster.wait_pod(namespace, "job-name=nightly-manual")
    cluster.kill(namespace, killed, restarts=0, down=True)

    def raised() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "cronjob/nightly")
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
        return obj if memory(template["spec"]["containers"][0]) == "300Mi" else None

    eventually(raised, 30, what="CronJob job template limit 300Mi")
    inc = cluster.wait_incident(namespace, "CronJob", "nightly", "raised", action="Applied")
    patch = json.loads(inc["status"]["actions"][-1]["patch"])
    assert {
        "op": "replace",
        "path": "/spec/jobTemplate/spec/template/spec/containers/0/resources/limits/memory",
        "value": "300Mi",
    } in patch
    after = get(cluster, namespace, "job/nightly-manual")
    assert memory(after["spec"]["template"]["spec"]["containers"][0]) == "200Mi"
    managers = {m["manager"] for m in after["metadata"].get("managedFields") or ()}
    assert "oncall-operator" not in managers, managers
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert gets_for_kill(op, namespace, killed) == 0  # only the Job was read, to find its CronJob


def test_bare_pod_gets_a_recommendation_and_a_page(cluster: Cluster, namespace: str, peer: Peer) -> None:
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lonely", "labels": {"app": "lonely"}},
        "spec": {"containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "200Mi"}}}]},
    }
    cluster.apply(namespace, *pager(peer), bare)
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=lonely"), restarts=0, down=True)
    inc = cluster.wait_incident(namespace, "Pod", "lonely", "refused", action="NoTemplate")
    assert "recreate it with limits.memory=300Mi" in inc["status"]["actions"][-1]["reason"]
    assert needs_human(inc) == ("True", "NoTemplate")
    paged = eventually(lambda: pages(cluster.incident(namespace, "Pod", "lonely") or {}), 30, what="a page")
    assert [(level, result) for _, level, result in paged][:1] in ([(1, "Pending")], [(1, "Delivered")])
    eventually(lambda: peer.accepted_at("/hook/ok"), 30, what="the webhook page")


def test_stuck_rollout_pages_and_a_reopened_round_starts_at_level_1(
    cluster: Cluster, namespace: str, peer: Peer
) -> None:
    cluster.apply(namespace, *pager(peer, rollout_deadline="2s", maxRaises=1), workload("Deployment", "web", "100Mi"))
    cluster.make_ready(namespace, cluster.wait_pod(namespace, "app=web"))
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=web", limit="100Mi"))
    cluster.wait_limit("Deployment", namespace, "web", "200Mi")
    # the new pod never becomes ready: after the deadline a human is paged, though the severity only notifies
    inc = cluster.wait_incident(namespace, "Deployment", "web", "rollout stuck", phase="Triggered")

    def paged() -> dict[str, Any] | None:
        found = cluster.incident(namespace, "Deployment", "web")
        return found if found and pages(found) else None

    inc = eventually(paged, 30, what="a page")
    assert needs_human(inc) == ("True", "RolloutStuck")
    first = inc["status"]["escalation"]["startedAt"]
    assert [level for _, level, _ in pages(inc)] == [1]

    # the rollout completes: Mitigated again, then Resolved after the quiet period
    cluster.make_ready(namespace, cluster.wait_pod(namespace, "app=web", limit="200Mi"))
    resolved = cluster.wait_incident(namespace, "Deployment", "web", "resolved", phase="Resolved")
    assert resolved["status"]["guardrails"]["raises"] == 1

    # a new kill is a new round: raises from 0 (maxRaises 1 lets it raise), the escalation from level 1
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=web", limit="200Mi"), restarts=2)
    cluster.wait_limit("Deployment", namespace, "web", "300Mi")

    def second_page() -> dict[str, Any] | None:
        found = cluster.incident(namespace, "Deployment", "web") or {}
        esc = (found.get("status") or {}).get("escalation") or {}
        return found if esc.get("startedAt") != first and len(pages(found)) == 2 else None

    again = eventually(second_page, 40, what="the second round's page")
    status = again["status"]
    assert (status["escalation"]["level"], status["guardrails"]["raises"]) == (1, 1)
    assert [level for _, level, _ in pages(again)] == [1, 1]
    assert "Reopened" in [e["type"] for e in status["timeline"]]


def notifications(inc: dict[str, Any]) -> list[tuple[str, str]]:
    esc = (inc.get("status") or {}).get("escalation") or {}
    return [(n["kind"], n["channel"]) for n in esc.get("notifications") or () if n["kind"] in ("page", "notify")]


@pytest.mark.parametrize("order", ["kill-then-alert", "alert-racing-the-kill"])
def test_an_oom_alert_and_the_kill_make_one_incident_one_raise_one_page(
    cluster: Cluster, namespace: str, peer: Peer, op: OperatorProcess, order: str
) -> None:
    objs = pager(peer)
    objs[-1]["spec"]["trigger"] = {"alertName": "PodOOMKilled", "event": "OOMKilled"}
    cluster.apply(namespace, *objs, workload("Deployment", "web", "100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    cluster.kill(namespace, pod)
    if order == "kill-then-alert":
        cluster.wait_incident(namespace, "Deployment", "web", "mitigated", phase="Mitigated")
    starts = "2026-12-01T10:00:00Z"
    post_alert(op, namespace, "PodOOMKilled", starts, pod=pod["metadata"]["name"], container="app")
    inc = cluster.wait_incident(namespace, "Deployment", "web", "mitigated", phase="Mitigated")
    cluster.wait_limit("Deployment", namespace, "web", "200Mi")

    def joined() -> dict[str, Any] | None:
        found = cluster.incident(namespace, "Deployment", "web") or {}
        types = [e["type"] for e in (found.get("status") or {}).get("timeline") or ()]
        return found if "AlertFiring" in types and notifications(found) else None

    inc = eventually(joined, 30, what="the alert joined and the notification sent")
    post_alert(op, namespace, "PodOOMKilled", starts, pod=pod["metadata"]["name"], container="app")  # a repeat
    items = cluster.kubectl.json("get", "incidents", "-n", namespace)["items"]
    assert [i["metadata"]["name"] for i in items] == [inc["metadata"]["name"]]  # no am-podoomkilled-* beside it
    status = cluster.incident(namespace, "Deployment", "web")["status"]  # type: ignore[index]
    assert status["guardrails"]["raises"] == 1 and [a["state"] for a in status["actions"]] == ["Applied"]
    assert [e["type"] for e in status["timeline"]].count("AlertFiring") == 1
    assert notifications({"status": status}) == [("notify", "hook")]
    eventually(lambda: len(peer.accepted_at("/hook/ok")) >= 1, 30, what="the one notification")
    assert len(peer.accepted_at("/hook/ok")) == 1


VPA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "verticalpodautoscalers.autoscaling.k8s.io",
        # a *.k8s.io group: the API server wants the approval annotation, as the VPA's own CRD carries
        "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/63797"},
    },
    "spec": {
        "group": "autoscaling.k8s.io",
        "scope": "Namespaced",
        "names": {
            "plural": "verticalpodautoscalers",
            "singular": "verticalpodautoscaler",
            "kind": "VerticalPodAutoscaler",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def test_a_workload_a_vpa_manages_is_only_recommended_a_raise(cluster: Cluster, namespace: str) -> None:
    """The VPA's own CRD (its schema trimmed): the operator lists VPAs beside its dry-runs and stands back."""
    cluster.kubectl.run("apply", "-f", "-", stdin=json.dumps(VPA_CRD))
    cluster.kubectl.run("wait", "--for=condition=Established", "crd/verticalpodautoscalers.autoscaling.k8s.io")
    vpa = {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": "web-vpa"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "updatePolicy": {"updateMode": "InPlaceOrRecreate"},
        },
    }
    cluster.apply(namespace, runbook(), workload("Deployment", "web", "100Mi"), vpa)
    before = cluster.settled("Deployment", namespace, "web")
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=web"))
    inc = cluster.wait_incident(namespace, "Deployment", "web", "left to the VPA", action="ManagedByVPA")
    assert "recommended: raise memory of container app" in inc["status"]["actions"][-1]["reason"]
    cluster.assert_not_written_by_operator("Deployment", namespace, "web", before)
