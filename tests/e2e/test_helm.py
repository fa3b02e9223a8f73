"""The Helm chart on the real control plane: it lints, it applies, and its RBAC is exactly enough.

Rendered by the real helm, applied by the real kubectl to the session's API server (server-side
dry-run first, as ``helm install`` relies on the server to validate). Least privilege is shown
from both sides: the operator runs as the chart's ServiceAccount (a TokenRequest token, no other
credential) through an escalation, an OOM remediation and an alert intake, and no call is
refused; ``kubectl auth can-i`` as that ServiceAccount shows what it may not do. This module
starts and stops its own operators and so does not use the shared ``operator`` fixture.
"""

import base64
import json
import pathlib
import re
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from oncall_operator import devcluster
from oncall_operator.adapters import metrics, peering
from tests.conftest import REPO, eventually
from tests.e2e import test_escalation as esc
from tests.e2e.conftest import Kubectl
from tests.e2e.helm_support import (
    CHART,
    Helm,
    Release,
    chart_operator,
    denials,
    documents,
    find,
    install,
    log_records,
    secret_outside,
    service_account_kubeconfig,
    uninstall,
)
from tests.e2e.oom_support import AGENT, Cluster, runbook, workload
from tests.e2e.test_kubectl_plugin import oncall
from tests.peers import Peer

pytestmark = pytest.mark.e2e
FEATURES = ("serviceMonitor.enabled=true", "prometheusRule.enabled=true", "intake.tokenSecret=intake-token")


@pytest.fixture(scope="module")
def helm(control_plane: devcluster.ControlPlane) -> Helm:
    binary = control_plane.bindir / "helm"
    assert binary.exists(), "helm is built by `make tools` (hack/build-tools.sh helm)"
    return Helm(binary)


@pytest.fixture
def release_name() -> str:
    return f"oc{uuid.uuid4().hex[:6]}"


@pytest.fixture
def other(kubectl: Kubectl) -> Iterator[str]:
    """A second namespace: where the release's workloads live, or one outside its reach."""
    name = f"helm-other-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def rules(docs: list[dict[str, Any]], kind: str) -> list[tuple[str | None, dict[str, Any]]]:
    return [(d["metadata"].get("namespace"), r) for d in find(docs, kind) for r in d["rules"]]


# --- the chart itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [(), FEATURES, ("operator.watchNamespaces={team-a,team-b}", "rbac.secretNamespaces={team-a}", *FEATURES)],
    ids=["defaults", "all-features", "namespaced"],
)
def test_lint_strict_is_clean(helm: Helm, sets: tuple[str, ...]) -> None:
    proc = helm.run("lint", "--strict", str(CHART), *[x for s in sets for x in ("--set", s)])
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("securityContext.allowPrivilegeEscalation=true", "value must be false"),
        ("podSecurityContext.runAsNonRoot=false", "value must be true"),
        ("operator.watchNamespaces={team-*}", "does not match pattern"),
        ("replicaCount=0", "minimum"),
        ("rbac.secretNamspaces={x}", "additional properties"),
        ("externalURL=javascript:alert(1)", "does not match pattern"),  # the base of every answer link
    ],
)
def test_values_schema_refuses_what_would_break_the_promises(helm: Helm, bad: str, why: str) -> None:
    proc = helm.run("template", "x", str(CHART), "--set", bad, check=False)
    assert proc.returncode != 0 and why in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("sets", "secret_roles"),
    [
        ((), {"ops": None}),  # the release namespace, any name
        (
            ("operator.watchNamespaces={team-a}", "rbac.secretNamespaces={vault,team-a}", *FEATURES),
            {"vault": None, "team-a": None, "ops": ["intake-token", "r-oncall-operator-links"]},  # ops: token, link key
        ),
        (
            ("rbac.secretNames={pd,slack}",),
            {"ops": ["pd", "slack", "r-oncall-operator-intake", "r-oncall-operator-links"]},  # + the intake's, the key
        ),
    ],
    ids=["defaults", "namespaced", "by-name"],
)
def test_rbac_has_no_wildcards_and_reads_secrets_only_where_told(
    helm: Helm, sets: tuple[str, ...], secret_roles: dict[str, list[str] | None]
) -> None:
    docs = documents(helm.template("r", "ops", *sets))
    everything = rules(docs, "ClusterRole") + rules(docs, "Role")
    for _, rule in everything:
        assert "*" not in {*rule["verbs"], *rule["resources"], *rule["apiGroups"]}, rule
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    assert not [r for _, r in rules(docs, "ClusterRole") if "secrets" in r["resources"]]
    found = {ns: r.get("resourceNames") for ns, r in rules(docs, "Role") if "secrets" in r["resources"]}
    assert found == secret_roles
    assert all(r["verbs"] == ["get"] for _, r in everything if "secrets" in r["resources"])
    pods = [r for _, r in everything if "pods" in r["resources"]]
    assert all(set(r["verbs"]) == {"list", "watch", "create"} for r in pods), pods  # create: the dry-run only


def test_template_passes_server_side_dry_run_and_applies_under_restricted_pod_security(
    helm: Helm, kubectl: Kubectl, namespace: str, release_name: str
) -> None:
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    release = install(helm, kubectl, release_name, namespace)  # dry-run=server, then for real
    try:
        applied = kubectl.run("apply", "-f", "-", stdin=release.rendered)  # again: unchanged, no warnings
        assert "PodSecurity" not in applied.stderr and "Warning" not in applied.stderr, applied.stderr
        demo = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", str(REPO / "deploy/demo/oom-demo.yaml"))
        assert "Warning" not in demo.stderr, demo.stderr  # the README's OOM demo is restricted-clean too
        deployment = kubectl.json("get", "deployment", release.name + "-oncall-operator", "-n", namespace)
        assert deployment["spec"]["replicas"] == 2
        selector = f"app.kubernetes.io/instance={release.name}"

        def pods() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = kubectl.json("get", "pods", "-n", namespace, "-l", selector)["items"]
            return found if len(found) == 2 else None

        # the ReplicaSet controller made both pods, so PodSecurity "restricted" admitted them; no kubelet
        # here, so they stay Pending
        made = eventually(pods, 60, what="the Deployment's two pods (admitted by PodSecurity restricted)")
        assert {p["status"].get("phase") for p in made} == {"Pending"}
        peering_obj = kubectl.json("get", "clusterkopfpeering", release.name + "-oncall-operator")
        assert peering_obj["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
        kinds = sorted({d["kind"] for d in release.docs})
        assert kinds == sorted(
            {
                "ClusterKopfPeering",
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment",
                "NetworkPolicy",
                "PodDisruptionBudget",
                "Role",
                "RoleBinding",
                "Secret",  # the intake's generated token
                "Service",
                "ServiceAccount",
            }
        )
    finally:
        uninstall(kubectl, release)


def test_service_monitor_and_alerts_use_what_the_operator_exports(helm: Helm) -> None:
    docs = documents(helm.template("r", "ops", *FEATURES))
    [service], [monitor], [rule] = find(docs, "Service"), find(docs, "ServiceMonitor"), find(docs, "PrometheusRule")
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    exported = {"up"}
    assert peering.ACTIVE  # imported for its metrics, which live on the one registry
    for family in metrics.REGISTRY.collect():
        exported |= {family.name, f"{family.name}_total"} if family.type == "counter" else {family.name}
        exported |= {f"{family.name}_bucket"} if family.type == "histogram" else set()
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) >= {
        "OncallOperatorDown",
        "OncallOperatorNoActiveReplica",
        "OncallOperatorWatchStalled",
        "OncallRemediationsFailing",
        "OncallNotificationsFailing",
        "OncallPagesLate",
    }
    for name, expr in alerts.items():
        used = set(re.findall(r"\b(oncall_[a-z_]+|up)\{", expr))
        assert used and used <= exported, f"{name} uses {used - exported}, not exported"
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    assert 'result="failed"' in alerts["OncallNotificationsFailing"]
    bypass = {
        r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if r["labels"].get("oncall_bypass") == "true"
    }
    assert bypass >= {
        "OncallOperatorDown",
        "OncallOperatorNoActiveReplica",
        "OncallNotificationsFailing",
        "OncallPagesLate",
    }


def test_dockerfile_and_chart_agree(helm: Helm) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    [deployment] = find(documents(helm.template("r", "ops")), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert re.search(r"^FROM python:3\.11|^ARG PYTHON_IMAGE=python:3\.11", dockerfile, re.M)
    assert dockerfile.count("\nFROM ") == 2  # multi-stage: wheels, then the runtime without a compiler
    assert re.search(r"^USER 65532:65532$", dockerfile, re.M)
    assert values["podSecurityContext"]["runAsUser"] == 65532
    assert 'ENTRYPOINT ["oncall-operator"]' in dockerfile and container["args"][0] == "run"
    exposed = {int(p) for p in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M)[0].split()}
    assert {p["containerPort"] for p in container["ports"]} == exposed
    assert container["image"] == f"{values['image']['repository']}:0.1.0"


# --- least privilege: what the ServiceAccount may and may not do --------------------------------


def can(kubectl: Kubectl, release: Release, *args: str) -> bool:
    proc = kubectl.run("auth", "can-i", *args, f"--as={release.user}", check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stdout + proc.stderr
    return proc.stdout.strip() == "yes"


@pytest.mark.parametrize("scope", ["cluster-wide", "namespaced"])
def test_service_account_may_do_its_job_and_nothing_more(
    helm: Helm, kubectl: Kubectl, namespace: str, other: str, release_name: str, scope: str
) -> None:
    watched = f"{namespace}-w" if scope == "namespaced" else other
    if scope == "namespaced":
        kubectl.run("create", "namespace", watched)
    sets = [f"rbac.secretNamespaces={{{watched}}}"]
    if scope == "namespaced":
        sets.append(f"operator.watchNamespaces={{{watched}}}")
    release = install(helm, kubectl, release_name, namespace, *sets, dry_run_first=False)
    peering_name = release.name + "-oncall-operator"
    try:
        allowed = [
            ("watch", "pods", "-n", watched),
            ("patch", "deployments", "-n", watched),
            ("patch", "statefulsets", "-n", watched),
            ("patch", "daemonsets", "-n", watched),
            ("patch", "pods", "--subresource=resize", "-n", watched),
            ("patch", "cronjobs", "-n", watched),
            ("watch", "daemonsets", "-n", watched),  # the remediation's caches
            ("watch", "cronjobs", "-n", watched),
            ("create", "incidents.oncall.dev", "-n", watched),
            ("update", "incidents.oncall.dev", "--subresource=status", "-n", watched),
            ("get", "secrets", "-n", watched),
            ("create", "events", "-n", watched),
            ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ]
        denied = [
            ("delete", "pods", "-n", watched),
            ("patch", "pods", "-n", watched),
            ("update", "pods", "--subresource=status", "-n", watched),
            ("create", "pods", "--subresource=exec", "-n", watched),
            ("get", "pods", "--subresource=log", "-n", watched),
            ("list", "secrets", "-n", watched),  # get by name only: no dump of all Secrets
            ("get", "secrets", "-n", "kube-system"),
            ("get", "secrets", "-n", namespace),  # not even its own namespace, unless told
            ("delete", "deployments", "-n", watched),
            ("delete", "daemonsets", "-n", watched),
            ("patch", "jobs", "-n", watched),  # a running Job is left alone
            ("create", "deployments", "-n", watched),
            ("delete", "incidents.oncall.dev", "-n", watched),
            ("delete", "namespaces"),
            ("create", "clusterroles"),
            ("create", "rolebindings", "-n", watched),
            ("bind", "clusterroles"),
            ("impersonate", "users"),
            ("create", "serviceaccounts/token", "-n", namespace),
            ("patch", "nodes"),
            ("create", "customresourcedefinitions.apiextensions.k8s.io"),
            ("update", "mutatingwebhookconfigurations.admissionregistration.k8s.io"),
        ]
        if scope == "namespaced":
            allowed += [
                ("get", f"namespaces/{watched}"),
                ("patch", f"kopfpeerings.kopf.dev/{peering_name}", "-n", watched),
            ]
            denied += [  # nothing outside the watched namespaces
                ("watch", "pods", "-n", other),
                ("patch", "deployments", "-n", other),
                ("create", "incidents.oncall.dev", "-n", other),
                ("create", "events", "-n", other),
                ("create", "configmaps", "-n", other),
                ("get", f"namespaces/{other}"),
                ("patch", "kopfpeerings.kopf.dev/another-operator", "-n", watched),
                ("patch", f"clusterkopfpeerings.kopf.dev/{peering_name}"),
            ]
        else:
            allowed += [
                ("watch", "pods", "--all-namespaces"),
                ("patch", f"clusterkopfpeerings.kopf.dev/{peering_name}"),
            ]
            denied += [("patch", "clusterkopfpeerings.kopf.dev/another-operator")]
        refused = [a for a in allowed if not can(kubectl, release, *a)]
        granted = [d for d in denied if can(kubectl, release, *d)]
        assert not refused and not granted, f"refused: {refused}; granted: {granted}"
    finally:
        uninstall(kubectl, release)
        if scope == "namespaced":
            kubectl.run("delete", "namespace", watched, "--wait=false", check=False)


# --- the operator as the chart's ServiceAccount --------------------------------------------------


def alert(namespace: str) -> dict[str, Any]:
    labels = {"alertname": "ChartRbacProbe", "namespace": namespace, "severity": "warning"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ChartRbacProbe"}',
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": "ChartRbacProbe"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "probe"},
        "externalURL": "http://alertmanager.invalid",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "probe"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.invalid/graph",
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ],
    }


def http(method: str, url: str, body: dict[str, Any] | None = None, token: str = "") -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


@pytest.mark.parametrize("scope", ["namespaced", "cluster-wide"])
def test_operator_runs_as_the_chart_service_account_without_a_refusal(
    helm: Helm,
    kubectl: Kubectl,
    control_plane: devcluster.ControlPlane,
    namespace: str,
    other: str,
    release_name: str,
    peer: Peer,
    smtp_port: int,
    tmp_path: pathlib.Path,
    scope: str,
) -> None:
    """Escalation, OOM remediation and alert intake, with only the chart's RBAC: nothing refused."""
    work = other  # the team's namespace: its policy, Secrets, workload and Incidents
    sets = [f"rbac.secretNamespaces={{{work}}}"] + (
        [f"operator.watchNamespaces={{{work}}}"] if scope == "namespaced" else []
    )
    release = install(helm, kubectl, release_name, namespace, *sets, dry_run_first=False)
    kubeconfig = service_account_kubeconfig(control_plane, kubectl, release, tmp_path / "sa.kubeconfig")
    whoami = kubectl.run(
        "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == release.user
    process = chart_operator(
        release,
        kubeconfig,
        tmp_path / "operator.log",
        "pod-a",
        ONCALL_TICK_SECONDS="0.5",
        ONCALL_RECHECK_SECONDS="1",
        ONCALL_PAGERDUTY_ENDPOINTS="http://127.0.0.1:*",
        ONCALL_SMTP_HOSTS="127.0.0.1",  # the local receivers
    )
    admin = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    admin.user_agent = AGENT
    cluster = Cluster(admin, kubectl)
    try:
        esc.setup(kubectl, work, peer, smtp_port)
        cluster.apply(work, runbook(), workload("Deployment", "web", "200Mi", request="100Mi"))
        process.start()
        base = f"http://127.0.0.1:{process.http_port}"
        eventually(lambda: http("GET", f"{base}/readyz")[0] == 200, 30, what="the intake ready")

        # escalation: page, acknowledge (needs the policy's Secrets, Incident status writes, Events)
        esc.open_incident(kubectl, work)
        eventually(lambda: ("page/L1/loop0", "pagerduty", "Delivered") in esc.steps(kubectl, work), 30, what="L1")
        assert oncall(kubectl, work, "ack", "checkout-down").returncode == 0
        eventually(lambda: "acknowledge" in [a for a, _ in esc.pd_events(peer)], 30, what="PD acknowledge")
        assert sum("Level 1 (l1)" in summary for _, summary in esc.pd_events(peer)) == 1, esc.pd_events(peer)

        # OOM remediation: the watch, the owner chain, both dry-runs, the patch, the Incident, Events
        cluster.kill(work, cluster.wait_pod(work, "app=web"))
        cluster.wait_limit("Deployment", work, "web", "300Mi")
        cluster.wait_incident(work, "Deployment", "web", "mitigated", phase="Mitigated")

        # alert intake: an Alertmanager notification becomes an Incident in the alert's namespace
        [deployment] = find(release.docs, "Deployment")
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        secret = kubectl.json("get", "secret", env["ONCALL_INTAKE_TOKEN_SECRET"], "-n", namespace)
        token = base64.b64decode(secret["data"]["token"]).decode()  # the chart made it: no open intake
        assert http("POST", f"{base}/api/v1/alerts", alert(work))[0] == 401
        code, body = http("POST", f"{base}/api/v1/alerts", alert(work), token)
        assert code == 200, body
        made = json.loads(body)["incident"]
        assert made.startswith(f"{work}/"), made
        kubectl.run("get", "incident", made.split("/")[1], "-n", work)

        assert "oncall_operator_active 1.0" in http("GET", f"{base}/metrics")[1]
        liveness = next(a.split("=", 1)[1] for a in process.args if a.startswith("--liveness="))
        assert http("GET", liveness)[0] == 200  # Kopf's liveness endpoint, the chart's livenessProbe
        ready = kubectl.json("get", "escalationpolicy/fast", "-n", work)["status"]["conditions"]
        assert {c["type"]: c["status"] for c in ready}["Ready"] == "True"  # the Secrets' keys were readable
    finally:
        process.stop()
        uninstall(kubectl, release)
    # A 403 for writing into a namespace that is being deleted (another test's, going away) is
    # the API server's NamespaceTerminating answer, not an RBAC refusal: leave those lines out.
    log = "\n".join(r for r in log_records(process.log.read_text()) if "is being terminated" not in r)
    assert "Not enough permissions" not in log and "APIForbiddenError" not in log  # Kopf's own calls
    refused = denials(log)
    if scope == "cluster-wide":  # it also sees what other tests left elsewhere: their Secrets are not for it
        refused = [r for r in refused if not secret_outside(r, work)]
    assert not refused, "\n".join(refused[:10])
