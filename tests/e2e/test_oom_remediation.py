"""OOM kills are remediated inside their guardrails, and every step lands on one Incident.

Real apiserver and controllers: the Deployment and StatefulSet controllers make the pods and
roll them out; the test only plays the kubelet (OOM kills and readiness in pod status). This
module starts, kills and restarts its own operators (``OperatorProcess``) and so does not use
the shared ``operator`` fixture. Every test ends by checking that no pod in its namespace was
written, annotated, labelled or finalized by anyone but its controller and the test.
"""

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from oncall_operator.domain import oom
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.oom_support import AGENT, Cluster, runbook, workload

pytestmark = pytest.mark.e2e
D, S = "Deployment", "StatefulSet"


@pytest.fixture(scope="module")
def cluster(control_plane: devcluster.ControlPlane, kubectl: Kubectl) -> Cluster:
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    client.user_agent = AGENT
    return Cluster(client, kubectl)


@pytest.fixture(scope="module")
def home(cluster: Cluster) -> Iterator[str]:
    """The operator's own namespace, with a default OOM runbook for every watched namespace."""
    name = f"oncall-oom-{uuid.uuid4().hex[:6]}"
    cluster.kubectl.run("create", "namespace", name)
    cluster.apply(name, runbook("default-oom", {"maxLimit": "2Gi"}))
    yield name
    cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def op(
    control_plane: devcluster.ControlPlane, crds: None, home: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("oom-operator") / "operator.log"
    env = {"ONCALL_NAMESPACE": home, "ONCALL_HTTP_ADDRESS": "127.0.0.1:0"}  # no port shared with other operators
    process = OperatorProcess(control_plane.kubeconfig, log, env=env)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def pods_untouched(cluster: Cluster, namespace: str, op: OperatorProcess) -> Iterator[None]:
    yield
    cluster.assert_pods_untouched(namespace)


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"]["containers"][0])


def test_deployment_oom_raises_the_limit_rolls_out_and_resolves(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, runbook(), workload(D, "web", "200Mi", request="100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    finished = cluster.kill(namespace, pod)

    raised = cluster.wait_limit(D, namespace, "web", "300Mi")  # max(200Mi x 1.2, 200Mi + 100Mi)
    assert container(raised)["resources"]["requests"] == {"memory": "100Mi"}
    new_pod = cluster.wait_pod(namespace, "app=web", limit="300Mi")  # the controller's new ReplicaSet
    assert new_pod["metadata"]["labels"]["pod-template-hash"] != pod["metadata"]["labels"]["pod-template-hash"]

    inc = cluster.wait_incident(namespace, D, "web", "mitigated", phase="Mitigated")
    status = inc["status"]
    key = oom.kill_key(pod["metadata"]["uid"], "app", finished, "", 1)
    assert (status["occurrences"], status["guardrails"]["raises"], status["guardrails"]["seen"]) == (1, 1, [key])
    [action] = status["actions"]
    assert (action["state"], action["type"], action["before"], action["after"]) == (
        "Applied",
        "raiseMemoryLimit",
        "limits.memory=200Mi",
        "limits.memory=300Mi",
    )
    assert json.loads(action["patch"])[2] == {
        "op": "replace",
        "path": "/spec/template/spec/containers/0/resources/limits/memory",
        "value": "300Mi",
    }
    [seen] = status["detections"]
    assert (seen["pod"], seen["restartCount"], seen["finishedAt"], seen["limit"], seen["request"]) == (
        pod["metadata"]["name"],
        1,
        finished,
        "200Mi",
        "100Mi",
    )
    assert [e["type"] for e in status["timeline"]][:3] == [
        "Triggered",
        "OOMKilled",
        "ActionApplied",
    ]
    assert raised["metadata"]["annotations"]["oncall.dev/remediated-kill"] == key
    [row] = cluster.kubectl.table("get", "incidents", "-n", namespace)
    assert (row["NAME"], row["SEVERITY"], row["PHASE"]) == (inc["metadata"]["name"], "warning", "Mitigated")
    assert (row["NEEDS-HUMAN"], row["TARGET"]) == ("False", "Deployment/" + namespace + "/web[app]")

    def events() -> set[str]:
        out = cluster.kubectl.run("get", "events", "-n", namespace, "--field-selector", "reason=MemoryLimitRaised")
        found = {kind for kind in ("deployment/web", f"incident/{inc['metadata']['name']}") if kind in out.stdout}
        return found if len(found) == 2 else set()

    eventually(events, 30, what="Events on the Deployment and on the Incident")

    cluster.make_ready(namespace, new_pod)  # the new pods run without an OOM for the quiet period (2s)
    done = cluster.wait_incident(namespace, D, "web", "resolved", phase="Resolved")
    assert done["status"]["resolvedBy"] == "oncall-operator"
    assert "Resolved" in [e["type"] for e in done["status"]["timeline"]]


def test_statefulset_oom_uses_the_default_runbook_and_rolls_out(cluster: Cluster, namespace: str, home: str) -> None:
    cluster.apply(namespace, workload(S, "db", "512Mi"))
    pod = cluster.wait_pod(namespace, "app=db")
    revision = cluster.settled(S, namespace, "db")["status"]["updateRevision"]
    cluster.kill(namespace, pod, down=True)  # still down: state.terminated, restartCount 0

    cluster.wait_limit(S, namespace, "db", "615Mi")  # 512Mi x 1.2 = 614.4Mi, rounded up
    new = cluster.wait_pod(namespace, "app=db", limit="615Mi")
    assert new["metadata"]["labels"]["controller-revision-hash"] != revision
    inc = cluster.wait_incident(namespace, S, "db", "mitigated", phase="Mitigated")
    assert inc["spec"]["runbookRef"] == {"name": "default-oom", "namespace": home}

    def ready() -> str | None:
        found = cluster.incident(namespace, S, "db") or {}
        conds = [c for c in (found.get("status") or {}).get("conditions", []) if c["type"] == "Ready"]
        return conds[0]["status"] if conds else None

    assert eventually(ready, 30, what="the Incident's Ready condition") == "True"  # the cross-namespace ref resolves


def test_bare_pod_and_job_get_an_incident_and_no_patch(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, runbook())
    bare: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lonely", "labels": {"app": "lonely"}},
        "spec": {"containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}]},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "report"},
        "spec": {"template": {"spec": {**bare["spec"], "restartPolicy": "Never"}}},
    }
    cluster.apply(namespace, bare, job)
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=lonely"), restarts=0, down=True)
    cluster.kill(namespace, cluster.wait_pod(namespace, "job-name=report"), restarts=0, down=True)
    for kind, name in (("Pod", "lonely"), ("Job", "report")):
        inc = cluster.wait_incident(namespace, kind, name, "refused", phase="Triggered", action="NoTemplate")
        assert inc["status"]["actions"][0]["state"] == "Refused"
        assert "recommended: recreate it with limits.memory=164Mi" in inc["status"]["actions"][0]["reason"]
        [cond] = [c for c in inc["status"]["conditions"] if c["type"] == "NeedsHuman"]
        assert (cond["status"], cond["reason"]) == ("True", "NoTemplate")


def test_repeated_ooms_raise_step_by_step_up_to_the_cap_then_a_human_is_needed(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(namespace, runbook(rule={"maxLimit": "300Mi", "maxRaises": 5}), workload(D, "leaky", "100Mi"))
    cluster.make_ready(namespace, cluster.wait_pod(namespace, "app=leaky"))
    for before, after in (("100Mi", "200Mi"), ("200Mi", "300Mi")):
        cluster.kill(namespace, cluster.wait_pod(namespace, "app=leaky", limit=before))
        cluster.wait_limit(D, namespace, "leaky", after)
        cluster.make_ready(namespace, cluster.wait_pod(namespace, "app=leaky", limit=after))  # the rollout completes
    at_cap = cluster.settled(D, namespace, "leaky")
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=leaky", limit="300Mi"))
    inc = cluster.wait_incident(namespace, D, "leaky", "at the cap", occurrences=3, action="AtCap")
    [cond] = [c for c in inc["status"]["conditions"] if c["type"] == "NeedsHuman"]
    assert (cond["status"], cond["reason"]) == ("True", "AtCap")
    assert inc["status"]["phase"] == "Triggered" and inc["status"]["guardrails"]["raises"] == 2
    assert [a["after"] for a in inc["status"]["actions"]] == ["limits.memory=200Mi", "limits.memory=300Mi", ""]
    cluster.kill(namespace, cluster.wait_pod(namespace, "app=leaky", limit="300Mi"), restarts=2)
    cluster.wait_incident(namespace, D, "leaky", "still at the cap", occurrences=4, action="AtCap")
    assert (
        cluster.workload(D, namespace, "leaky")["metadata"]["resourceVersion"] == at_cap["metadata"]["resourceVersion"]
    )


def _relisted(op: OperatorProcess, offset: int, namespace: str, pods: list[str]) -> bool:
    text = op.log.read_text()[offset:]
    return all(re.search(rf"OOM {namespace}/{pod}: \d kill\(s\) already recorded", text) for pod in pods)


def test_restarts_between_ooms_and_during_relisting_count_each_kill_once(
    cluster: Cluster, namespace: str, op: OperatorProcess
) -> None:
    cluster.apply(namespace, runbook(), workload(D, "api", "100Mi"), workload(D, "crashy", "100Mi"))
    first = cluster.wait_pod(namespace, "app=api")
    cluster.kill(namespace, first)
    cluster.wait_limit(D, namespace, "api", "200Mi")
    cluster.wait_incident(namespace, D, "api", "first raise", occurrences=1)
    crashy = cluster.wait_pod(namespace, "app=crashy")
    op.kill()
    try:
        # while the operator is down: a new kill on api's new pod, and on crashy a kill the dead operator
        # had already answered with its patch (limit + marker) but not yet recorded in an Incident
        second = cluster.wait_pod(namespace, "app=api", limit="200Mi")
        finished = cluster.kill(namespace, second, restarts=0, down=True)
        crash_finished = cluster.kill(namespace, crashy)
        crash_key = oom.kill_key(crashy["metadata"]["uid"], "app", crash_finished, "", 1)
        cluster.apps.patch_namespaced_deployment(
            "crashy",
            namespace,
            [
                {"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory", "value": "200Mi"},
                {"op": "add", "path": "/metadata/annotations/oncall.dev~1remediated-kill", "value": crash_key},
            ],
        )
        crashy_generation = cluster.workload(D, namespace, "crashy")["metadata"]["generation"]
    finally:
        op.start()
    cluster.wait_limit(D, namespace, "api", "300Mi")
    inc = cluster.wait_incident(namespace, D, "api", "second raise", occurrences=2)
    assert inc["status"]["guardrails"]["raises"] == 2
    recovered = cluster.wait_incident(namespace, D, "crashy", "recovered", action="Recovered", occurrences=1)
    assert recovered["status"]["guardrails"]["raises"] == 1 and recovered["status"]["phase"] == "Mitigated"
    assert cluster.workload(D, namespace, "crashy")["metadata"]["generation"] == crashy_generation

    # the same kill seen again once the container restarted (restartCount + 1): not a new kill
    cluster.kill(namespace, second, restarts=1, finished=finished)
    api_generation = cluster.workload(D, namespace, "api")["metadata"]["generation"]
    oomed = [p["metadata"]["name"] for p in cluster.pods(namespace) if oom.has_oom(p.get("status"))]
    offset = len(op.log.read_text())
    op.kill()
    op.start()  # the initial listing shows every old kill again
    eventually(lambda: _relisted(op, offset, namespace, oomed), 30, what=f"the re-listing of {oomed}")
    for name, occurrences, raises in (("api", 2, 2), ("crashy", 1, 1)):
        status = (cluster.incident(namespace, D, name) or {})["status"]
        assert (status["occurrences"], status["guardrails"]["raises"]) == (occurrences, raises), name
    assert cluster.workload(D, namespace, "api")["metadata"]["generation"] == api_generation


def test_limitrange_forbidding_the_new_limit_writes_nothing(cluster: Cluster, namespace: str) -> None:
    limits = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "mem"}}
    limits["spec"] = {"limits": [{"type": "Container", "max": {"memory": "150Mi"}}]}
    cluster.apply(namespace, limits, runbook(), workload(D, "web", "100Mi"))
    pod = cluster.wait_pod(namespace, "app=web")
    before = cluster.settled(D, namespace, "web")
    cluster.kill(namespace, pod)
    inc = cluster.wait_incident(namespace, D, "web", "dry-run rejected", action="DryRunRejected")
    [action] = inc["status"]["actions"]
    assert action["state"] == "Refused" and "maximum memory usage per Container is 150Mi" in action["reason"]
    assert "nothing written" in action["reason"] and action["after"] == "limits.memory=200Mi"
    [cond] = [c for c in inc["status"]["conditions"] if c["type"] == "NeedsHuman"]
    assert (cond["status"], cond["reason"]) == ("True", "DryRunRejected")
    cluster.assert_not_written_by_operator(D, namespace, "web", before)


OPT_OUT = {"oncall.dev/remediation": "disabled"}


@pytest.mark.parametrize(
    ("case", "reason", "state"),
    [
        ({"annotations": OPT_OUT}, "OptedOut", "Refused"),
        ({"namespace_annotations": OPT_OUT}, "OptedOut", "Refused"),
        ({"guard": {"dryRun": True}}, "DryRun", "DryRun"),
        ({"labels": {"argocd.argoproj.io/instance": "shop"}}, "GitOpsManaged", "Refused"),
        ({"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:x/web"}}, "GitOpsManaged", "Refused"),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}, "GitOpsManaged", "Refused"),
        ({"labels": {"helm.toolkit.fluxcd.io/name": "web"}}, "GitOpsManaged", "Refused"),
        ({"paused": True}, "Paused", "Refused"),
    ],
    ids=["opt-out", "opt-out-ns", "dry-run", "argo", "argo-tracking-id", "flux", "flux-helm", "paused"],
)
def test_guardrails_record_the_change_and_write_nothing(
    cluster: Cluster, namespace: str, case: dict[str, Any], reason: str, state: str
) -> None:
    if "namespace_annotations" in case:
        cluster.kubectl.run("annotate", "namespace", namespace, "oncall.dev/remediation=disabled")
    shape = {k: v for k, v in case.items() if k in ("labels", "annotations")}
    cluster.apply(namespace, runbook(**case.get("guard", {})), workload(D, "web", "100Mi", **shape))
    pod = cluster.wait_pod(namespace, "app=web")
    if case.get("paused"):
        cluster.kubectl.run("rollout", "pause", "deployment/web", "-n", namespace)
    before = cluster.settled(D, namespace, "web")
    cluster.kill(namespace, pod)
    inc = cluster.wait_incident(namespace, D, "web", reason, action=reason)
    [action] = inc["status"]["actions"]
    assert (action["state"], action["after"]) == (state, "limits.memory=200Mi")
    assert '"value":"200Mi"' in action["patch"]  # the planned / recommended patch is recorded
    cluster.assert_not_written_by_operator(D, namespace, "web", before)


def test_operator_wide_dry_run_and_watch_scope(
    cluster: Cluster, namespace: str, home: str, op: OperatorProcess
) -> None:
    outside = f"{namespace[:50]}-out"
    cluster.kubectl.run("create", "namespace", outside)
    for ns in (namespace, outside):
        cluster.apply(ns, runbook(), workload(D, "web", "100Mi"))
    op.stop()
    env, args = dict(op.env), op.args
    op.env["ONCALL_DRY_RUN"] = "true"
    op.args = ("--namespace", namespace, "--namespace", home)
    offset = len(op.text())
    op.start()
    try:
        befores = {ns: cluster.settled(D, ns, "web") for ns in (namespace, outside)}
        cluster.kill(outside, cluster.wait_pod(outside, "app=web"))
        cluster.kill(namespace, cluster.wait_pod(namespace, "app=web"))
        inc = cluster.wait_incident(namespace, D, "web", "operator-wide dry-run", action="DryRun")
        assert "ONCALL_DRY_RUN" in inc["status"]["actions"][0]["reason"]
        assert "server-side dry-run accepted" in inc["status"]["actions"][0]["reason"]
        # the kill outside came first and was not answered: the watch covers the scope only
        watching = eventually(
            lambda: re.findall(r"pod watch: acting, listing and watching (.*)", op.text()[offset:]), 30, what="watch"
        )
        assert watching == [f"/api/v1/namespaces/{namespace}/pods, /api/v1/namespaces/{home}/pods"], watching
        assert cluster.incident(outside, D, "web") is None
        for ns, before in befores.items():
            cluster.assert_not_written_by_operator(D, ns, "web", before)
        cluster.assert_pods_untouched(outside)
    finally:
        # the pods go before a cluster-wide operator could see their kill (which would then be in scope)
        cluster.kubectl.run("delete", "deployment", "web", "-n", outside, "--cascade=foreground", "--timeout=60s")
        cluster.kubectl.run("delete", "namespace", outside, "--wait=false", check=False)
        op.stop()
        op.env, op.args = env, args
        op.start()
