"""OOM remediation on the real node, as users meet it: in place, past what the node can hold, every owner, the alert.

The kernel kills the memory hog (``hack/images/memory-hog``, 96 MiB under a 64Mi limit), the
kubelet reports it, and the operator (a child process, one per test, watching only the test's
namespace) answers: an in-place resize of a single-replica Deployment behind a PDB (same pod,
the container's cgroup limit raised), a resize the node cannot hold (its request above the
node's allocatable: the kubelet says Infeasible, the template is patched instead) or has no room
for yet (Deferred: the template is patched at the runbook's resizeDeadline), a DaemonSet
and a CronJob, a real Alertmanager's ``PodOOMKilled`` alert joining the kill's Incident, and a
rollout the scheduler cannot place (a Guaranteed pod raised past the node's allocatable) paging a
human after the runbook's rolloutDeadline.
The node and its control plane are the session's (``node_support.node_cluster``).
"""

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator.devcluster import images
from oncall_operator.domain import quantity
from tests.conftest import eventually
from tests.e2e.alertmanager_support import Alertmanager, rfc3339
from tests.e2e.conftest import OperatorProcess
from tests.e2e.node_support import (
    NodeCluster,
    cgroup_memory_limit,
    hog,
    kernel_oom_kills,
    running_ready,
    wait_for,
)
from tests.e2e.oom_support import memory, runbook
from tests.e2e.test_oom_owners import notifications, pager, pages
from tests.e2e.test_real_node import HOG_MIB, LIMIT, RAISED, RULE, node_ns, pod_named
from tests.peers import Peer

pytestmark = pytest.mark.e2e
__all__ = ["node_ns"]  # the fixture, shared with test_real_node.py
MI = 1024 * 1024
IN_PLACE = {**RULE, "strategy": "InPlace"}


@pytest.fixture
def operator(node_cluster: NodeCluster, node_ns: str, tmp_path: Any) -> Iterator[OperatorProcess]:
    env = {"ONCALL_NAMESPACE": node_ns}
    op = OperatorProcess(
        node_cluster.plane.kubeconfig, tmp_path / "operator.log", env=env, args=("--namespace", node_ns)
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()


def wait_kernel_oom(nc: NodeCluster, ns: str, selector: str) -> dict[str, Any]:
    """The first pod the kernel OOM-killed (exit 137), whatever its spec says by then (a resize changes it)."""

    def probe() -> dict[str, Any] | None:
        return next((p for p in nc.cluster.pods(ns, selector) if kernel_oom_kills(p)), None)

    pod = wait_for(probe, 180, f"the kernel to OOM-kill a pod {selector}")
    assert kernel_oom_kills(pod)[0]["exitCode"] == 137, pod["status"]
    return pod


def get(nc: NodeCluster, ns: str, what: str) -> dict[str, Any]:
    return dict(nc.kubectl.json("get", what, "-n", ns))


def actions(nc: NodeCluster, ns: str, kind: str, name: str) -> list[str]:
    inc = nc.cluster.incident(ns, kind, name) or {}
    return [a["reason"].split(":")[0] for a in (inc.get("status") or {}).get("actions") or ()]


def test_in_place_resize_relieves_a_single_replica_deployment_with_a_pdb(
    node_cluster: NodeCluster, node_ns: str, operator: OperatorProcess
) -> None:
    """No new pod: the killed pod is resized, its container restarts at 128Mi, and the kernel holds it to that."""
    nc, ns = node_cluster, node_ns
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "hog"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "hog"}}},
    }
    app = hog("Deployment", "hog", LIMIT, HOG_MIB)
    # growing by 1 MiB every 50 ms, as a leak or a warming cache would: the restarted container is still
    # running when the resize comes (a container killed as it starts is restarted by the kubelet with the
    # new container limit, but its pod's cgroup keeps the old sum: see the README)
    app["spec"]["template"]["spec"]["containers"][0]["args"] = [str(HOG_MIB), "1"]
    nc.cluster.apply(ns, runbook("oom", IN_PLACE, cooldown="10m"), pdb, app)
    killed = wait_kernel_oom(nc, ns, "app=hog")
    uid = killed["metadata"]["uid"]

    def relieved() -> dict[str, Any] | None:
        pods = nc.cluster.pods(ns, "app=hog")
        if len(pods) != 1 or pods[0]["metadata"]["uid"] != uid or not running_ready(pods[0]):
            return None
        status = pods[0]["status"]["containerStatuses"][0]
        running = ((status.get("resources") or {}).get("limits") or {}).get("memory")
        return pods[0] if memory(pods[0]["spec"]["containers"][0]) == RAISED and running == RAISED else None

    try:
        pod = wait_for(relieved, 180, f"pod {killed['metadata']['name']} itself resized to {RAISED} and running")
    finally:
        now = pod_named(nc, ns, killed["metadata"]["name"])
        print(json.dumps({"conditions": now["status"].get("conditions"), **now["status"]["containerStatuses"][0]}))
        if running_ready(now):
            print("cgroups: pod", cgroup_memory_limit(now, whole_pod=True), "container", cgroup_memory_limit(now))
    assert cgroup_memory_limit(pod) == 128 * MI  # what the kernel enforces now
    assert cgroup_memory_limit(pod, whole_pod=True) in (-1, 128 * MI)  # the pod's own cgroup too (-1: none)
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    deadline = time.monotonic() + 15  # an explicit observation window: the 96 MiB fit, no new kill
    while time.monotonic() < deadline:
        now = pod_named(nc, ns, pod["metadata"]["name"])
        assert now["metadata"]["uid"] == uid and running_ready(now), now["status"]
        assert now["status"]["containerStatuses"][0]["restartCount"] == restarts, now["status"]
        time.sleep(1)
    deployment = get(nc, ns, "deployment/hog")
    assert memory(deployment["spec"]["template"]["spec"]["containers"][0]) == LIMIT  # no rollout: recommended
    assert len(nc.kubectl.json("get", "replicasets", "-n", ns)["items"]) == 1

    def completed() -> dict[str, Any] | None:
        inc = nc.cluster.incident(ns, "Deployment", "hog") or {}
        types = [e["type"] for e in (inc.get("status") or {}).get("timeline") or ()]
        return inc if "ResizeCompleted" in types else None

    inc = wait_for(completed, 60, "the resize recorded as completed")
    assert actions(nc, ns, "Deployment", "hog") == ["ResizedInPlace"], inc["status"]["actions"]
    assert "recommended: raise memory of container hog in Deployment hog" in inc["status"]["actions"][0]["reason"]


def test_a_resize_the_node_cannot_hold_falls_back_to_the_template(
    node_cluster: NodeCluster, node_ns: str, operator: OperatorProcess
) -> None:
    """A Guaranteed pod: its request must rise with its limit, to 1Ti, above any allocatable: Infeasible."""
    nc, ns = node_cluster, node_ns
    huge = {**IN_PLACE, "minStep": "1Ti", "maxLimit": "1Ti"}
    app = guaranteed(hog("Deployment", "big", LIMIT, HOG_MIB))
    nc.cluster.apply(ns, runbook("oom", huge, cooldown="10m"), app)
    killed = wait_kernel_oom(nc, ns, "app=big")
    assert killed["status"]["qosClass"] == "Guaranteed"

    def infeasible() -> dict[str, Any] | None:
        pod = pod_named(nc, ns, killed["metadata"]["name"])
        conds = [c for c in pod["status"].get("conditions") or () if c["type"] == "PodResizePending"]
        return pod if conds and conds[0].get("reason") == "Infeasible" else None

    pod = wait_for(infeasible, 120, "the kubelet to find the resize Infeasible")
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "1Ti"  # the QoS class kept

    def fell_back() -> bool:
        template = get(nc, ns, "deployment/big")["spec"]["template"]["spec"]["containers"][0]["resources"]
        return template["limits"]["memory"] == "1Ti" and template["requests"]["memory"] == "1Ti"

    wait_for(fell_back, 60, "the template patched instead")
    wait_for(lambda: actions(nc, ns, "Deployment", "big") == ["ResizedInPlace", "ResizeInfeasible"], 30, "recorded")
    inc = nc.cluster.incident(ns, "Deployment", "big") or {}
    assert "Node didn't have enough capacity" in inc["status"]["actions"][-1]["reason"]
    # the old pod (its spec says 1Ti, it runs with 64Mi) is killed again while the new one cannot be scheduled:
    # superseded by the template, no raise at the cap
    kills = inc["status"]["occurrences"]
    wait_for(
        lambda: (nc.cluster.incident(ns, "Deployment", "big") or {})["status"]["occurrences"] > kills, 120, "a kill"
    )
    assert actions(nc, ns, "Deployment", "big") == ["ResizedInPlace", "ResizeInfeasible"]


def guaranteed(app: dict[str, Any]) -> dict[str, Any]:
    """The workload's first container with requests equal to limits (memory and cpu): a Guaranteed pod."""
    app["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"memory": LIMIT, "cpu": "10m"},
        "requests": {"memory": LIMIT, "cpu": "10m"},
    }
    return app


def test_a_daemonset_and_a_cronjob_killed_by_the_kernel_are_remediated(
    node_cluster: NodeCluster, node_ns: str, operator: OperatorProcess
) -> None:
    nc, ns = node_cluster, node_ns
    ds = hog("Deployment", "agent", LIMIT, HOG_MIB)
    ds.update(kind="DaemonSet")
    ds["spec"].pop("replicas")
    job_pod = hog("Deployment", "report", LIMIT, HOG_MIB)["spec"]["template"]
    job_pod["spec"]["restartPolicy"] = "Never"
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report"},
        "spec": {"schedule": "0 3 1 1 *", "jobTemplate": {"spec": {"backoffLimit": 0, "template": job_pod}}},
    }
    nc.cluster.apply(ns, runbook("oom", RULE, cooldown="10m"), ds, cron)
    nc.kubectl.run("create", "job", "report-1", "--from=cronjob/report", "-n", ns)
    for selector in ("app=agent", "job-name=report-1"):
        print(f"{selector}: kernel OOM kill {kernel_oom_kills(wait_kernel_oom(nc, ns, selector))[0]}")

    def agent_raised() -> dict[str, Any] | None:
        pods = nc.cluster.pods(ns, "app=agent")
        ok = len(pods) == 1 and memory(pods[0]["spec"]["containers"][0]) == RAISED and running_ready(pods[0])
        return pods[0] if ok else None

    agent = wait_for(agent_raised, 180, f"the DaemonSet's pod at {RAISED}, running")
    assert cgroup_memory_limit(agent) == 128 * MI

    def cron_raised() -> bool:
        spec = get(nc, ns, "cronjob/report")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return memory(spec["containers"][0]) == RAISED

    wait_for(cron_raised, 120, f"the CronJob's job template at {RAISED}")
    first = get(nc, ns, "job/report-1")
    assert memory(first["spec"]["template"]["spec"]["containers"][0]) == LIMIT  # the running Job is left alone
    nc.kubectl.run("create", "job", "report-2", "--from=cronjob/report", "-n", ns)  # the next run

    def next_run() -> dict[str, Any] | None:
        pods = nc.cluster.pods(ns, "job-name=report-2")
        return pods[0] if pods and running_ready(pods[0]) else None

    run = wait_for(next_run, 120, "the next run's pod running")
    assert memory(run["spec"]["containers"][0]) == RAISED and not kernel_oom_kills(run)
    assert cgroup_memory_limit(run) == 128 * MI
    for kind, name in (("DaemonSet", "agent"), ("CronJob", "report")):
        inc = nc.cluster.incident(ns, kind, name) or {}
        applied = [a for a in (inc.get("status") or {}).get("actions") or () if a["state"] == "Applied"]
        assert len(applied) == 1 and applied[0]["after"] == f"limits.memory={RAISED}", (kind, inc.get("status"))


def test_a_real_alertmanagers_oom_alert_and_the_kernels_kill_make_one_incident(
    node_cluster: NodeCluster, node_ns: str, operator: OperatorProcess, peer: Peer, tmp_path: Any
) -> None:
    """One Incident, one raise, one page, whichever of the alert and the pod watch comes first."""
    nc, ns = node_cluster, node_ns
    objs = pager(peer)
    book = objs[-1]
    book["spec"]["trigger"] = {"alertName": "PodOOMKilled", "event": "OOMKilled"}
    book["spec"]["actions"][0]["raiseMemoryLimit"] = RULE
    book["spec"]["guardrails"]["cooldown"] = "10m"
    nc.cluster.apply(ns, *objs, hog("Deployment", "hog", LIMIT, HOG_MIB))
    am = Alertmanager(tmp_path / "am", f"http://127.0.0.1:{operator.http_port}/api/v1/alerts", "unused").start()
    try:
        killed = wait_kernel_oom(nc, ns, "app=hog")
        labels = {"alertname": "PodOOMKilled", "namespace": ns, "pod": killed["metadata"]["name"], "container": "hog"}
        start = dt.datetime.now(dt.UTC)
        am.post({"labels": labels, "startsAt": rfc3339(start), "endsAt": rfc3339(start + dt.timedelta(minutes=5))})

        def joined() -> dict[str, Any] | None:
            inc = nc.cluster.incident(ns, "Deployment", "hog") or {}
            types = [e["type"] for e in (inc.get("status") or {}).get("timeline") or ()]
            return inc if "AlertFiring" in types and notifications(inc) else None

        inc = wait_for(joined, 120, "the alert joined the kill's Incident, and its notification sent")
        wait_for(lambda: am.webhook_deliveries() >= 1, 60, "Alertmanager's delivery counted")
    finally:
        am.stop()
    items = nc.kubectl.json("get", "incidents", "-n", ns)["items"]
    assert [i["metadata"]["name"] for i in items] == [inc["metadata"]["name"]]  # no am-podoomkilled-* beside it
    eventually(lambda: memory(get(nc, ns, "deployment/hog")["spec"]["template"]["spec"]["containers"][0]) == RAISED, 60)
    status = (nc.cluster.incident(ns, "Deployment", "hog") or {})["status"]
    assert status["guardrails"]["raises"] == 1 and [a["state"] for a in status["actions"]] == ["Applied"]
    assert notifications({"status": status}) == [("notify", "hook")]
    eventually(lambda: len(peer.accepted_at("/hook/ok")) >= 1, 30, what="the one notification")
    assert len(peer.accepted_at("/hook/ok")) == 1


def test_a_resize_the_node_has_no_room_for_yet_is_deferred_then_the_template(
    node_cluster: NodeCluster, node_ns: str, operator: OperatorProcess
) -> None:
    """A filler pod requests all the node's allocatable memory but 96Mi: the Guaranteed hog (64Mi) fits, its
    resize to 128Mi does not yet (Deferred); nothing changes on the pod, and at resizeDeadline the operator
    patches the template by itself."""
    nc, ns = node_cluster, node_ns

    def node_alone() -> dict[str, Any] | None:  # no pod of an earlier test still holding requests
        pods = nc.kubectl.json("get", "pods", "-A", "--field-selector=spec.nodeName=oncall-node")["items"]
        return {"items": pods} if all(p["metadata"]["namespace"] in ("kube-system", ns) for p in pods) else None

    pods = wait_for(node_alone, 120, "the node free of earlier tests' pods")["items"]
    node = nc.kubectl.json("get", "node", "oncall-node")
    requested = sum(
        quantity.parse(((c.get("resources") or {}).get("requests") or {}).get("memory", "0"))
        for p in pods
        if p["status"].get("phase") not in ("Succeeded", "Failed")
        for c in p["spec"]["containers"]
    )
    room = quantity.parse(node["status"]["allocatable"]["memory"]) - requested
    filler = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "filler"},
        "spec": {
            "containers": [
                {
                    "name": "pause",
                    "image": images.PAUSE,
                    "imagePullPolicy": "Never",
                    "resources": {"requests": {"memory": str(int(room) - 96 * MI), "cpu": "1m"}},
                }
            ]
        },
    }
    app = guaranteed(hog("Deployment", "tight", LIMIT, HOG_MIB))
    nc.cluster.apply(ns, runbook("oom", IN_PLACE, cooldown="10m", resizeDeadline="20s"), filler)
    wait_for(lambda: running_ready(pod_named(nc, ns, "filler")), 60, "the filler running")
    nc.cluster.apply(ns, app)
    killed = wait_kernel_oom(nc, ns, "app=tight")

    def deferred() -> dict[str, Any] | None:
        pod = pod_named(nc, ns, killed["metadata"]["name"])
        conds = [c for c in pod["status"].get("conditions") or () if c["type"] == "PodResizePending"]
        return pod if conds and conds[0].get("reason") == "Deferred" else None

    wait_for(deferred, 60, "the kubelet to defer the resize")

    def fell_back() -> dict[str, Any] | None:
        inc = nc.cluster.incident(ns, "Deployment", "tight") or {}
        done = [a["reason"].split(":")[0] for a in (inc.get("status") or {}).get("actions") or ()]
        return inc if done == ["ResizedInPlace", "ResizeDeferred"] else None

    inc = wait_for(fell_back, 90, "the template patched at the resize's deadline")
    assert "is not done 20s after it was applied (PodResizePending Deferred" in inc["status"]["actions"][-1]["reason"]
    # the resize was followed, not raised again: its deferral noted when the pod showed it, or (a slow
    # machine: the container killed again at its old limit first) that kill counted against the resize
    followed = {"ResizePending", "Superseded"} & {e["type"] for e in inc["status"]["timeline"]}
    assert followed, inc["status"]["timeline"]
    template = get(nc, ns, "deployment/tight")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert template["limits"]["memory"] == template["requests"]["memory"] == RAISED


def test_a_rollout_the_node_cannot_take_pages_a_human(
    node_cluster: NodeCluster, node_ns: str, operator: OperatorProcess, peer: Peer
) -> None:
    """The template raise asks for 1Ti (a Guaranteed pod's request rises with its limit): the scheduler has no
    node for the new pod, the old one keeps being killed, and 20s (the runbook's rolloutDeadline) after the
    raise the Incident needs a human, and the policy pages one though the runbook's severity only notifies."""
    nc, ns = node_cluster, node_ns
    objs = pager(peer, rollout_deadline="20s", **{**RULE, "minStep": "1Ti", "maxLimit": "1Ti"})
    objs[-1]["spec"]["guardrails"]["cooldown"] = "10m"
    nc.cluster.apply(ns, *objs, guaranteed(hog("Deployment", "stuck", LIMIT, HOG_MIB)))
    wait_kernel_oom(nc, ns, "app=stuck")

    def unschedulable() -> dict[str, Any] | None:
        for pod in nc.cluster.pods(ns, "app=stuck"):
            scheduled = [c for c in pod["status"].get("conditions") or () if c["type"] == "PodScheduled"]
            if memory(pod["spec"]["containers"][0]) == "1Ti" and scheduled and scheduled[0]["status"] == "False":
                return scheduled[0]
        return None

    why = wait_for(unschedulable, 120, "the raised pod Pending, the scheduler finding no node for it")
    assert why["reason"] == "Unschedulable" and "Insufficient memory" in why["message"], why

    def human(inc: dict[str, Any]) -> tuple[str, str] | None:
        found = [c for c in (inc.get("status") or {}).get("conditions") or () if c["type"] == "NeedsHuman"]
        return (found[0]["status"], found[0]["reason"]) if found else None

    def stuck() -> dict[str, Any] | None:
        inc = nc.cluster.incident(ns, "Deployment", "stuck") or {}
        return inc if human(inc) == ("True", "RolloutStuck") else None

    inc = wait_for(stuck, 120, "NeedsHuman=True RolloutStuck after the rollout deadline")
    assert inc["status"]["phase"] != "Mitigated", inc["status"]["phase"]
    assert [a["state"] for a in inc["status"]["actions"]] == ["Applied"]
    assert inc["status"]["actions"][0]["after"] == "limits.memory=1Ti requests.memory=1Ti"

    def paged() -> list[Any]:
        return [b for b in peer.accepted_at("/hook/ok") if b.get("kind") == "page"]

    [page] = wait_for(paged, 60, "a page at the webhook receiver")
    assert page["incident"]["name"] == inc["metadata"]["name"] and page["level"] == 1, page
    assert [level for _, level, _ in pages(nc.cluster.incident(ns, "Deployment", "stuck") or {})] == [1]

    # while the pod stays Pending the old one is killed again: still a human's, never Mitigated
    kills = inc["status"]["occurrences"]

    def killed_again() -> dict[str, Any] | None:
        now = nc.cluster.incident(ns, "Deployment", "stuck") or {}
        return now if now["status"]["occurrences"] > kills else None

    again = wait_for(killed_again, 180, "the old pod OOM-killed again")
    assert human(again) == ("True", "RolloutStuck") and again["status"]["phase"] != "Mitigated", again["status"]
    assert [a["state"] for a in again["status"]["actions"]] == ["Applied"]  # no second raise
