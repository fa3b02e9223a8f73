"""A hostile namespace user against the operator, on a real API server with an audit log.

This module starts its own control plane (the session's has no audit log, and the admission
policies bound here would judge every other test's writes): the API server logs every request's
metadata (bench/kwok/audit-policy.yaml), the policies of
deploy/helm/oncall-operator/files/admission-policies.yaml are bound as the chart binds them, and
the operator runs as a ServiceAccount (``oncall-system:operator``, the identity the policies know).
The user is ``tenant-a:alice``, a ServiceAccount with a Role in ``tenant-a`` only, and every
request of hers is made with her TokenRequest token. She tries each cross-namespace route and
each forgery; afterwards the audit log must show no operator write outside ``tenant-a`` and the
operator's own namespace.
"""

import base64
import json
import pathlib
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from oncall_operator import devcluster
from tests import peers
from tests.conftest import REPO, eventually
from tests.e2e import helm_support
from tests.e2e.conftest import Kubectl, OperatorProcess, install_crds

API = "oncall.dev/v1alpha1"
POLICIES = REPO / "deploy/helm/oncall-operator/files/admission-policies.yaml"
AUDIT_POLICY = REPO / "bench/kwok/audit-policy.yaml"
TENANT, VICTIM, OPS = "tenant-a", "victim-b", "oncall-system"
OPERATOR = f"system:serviceaccount:{OPS}:operator"
ALICE = f"system:serviceaccount:{TENANT}:alice"


class Plane:
    def __init__(self, plane: devcluster.ControlPlane, admin: Kubectl, audit: pathlib.Path, tmp: pathlib.Path) -> None:
        self.plane, self.admin, self.audit, self.tmp = plane, admin, audit, tmp

    def kubeconfig_for(self, namespace: str, account: str) -> pathlib.Path:
        """A kubeconfig whose only credential is a TokenRequest token of ``namespace/account``."""
        token = self.admin.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
        admin = yaml.safe_load(self.plane.kubeconfig.read_text())
        cluster = dict(admin["clusters"][0]["cluster"])
        if "certificate-authority" in cluster and not pathlib.Path(cluster["certificate-authority"]).is_absolute():
            cluster["certificate-authority"] = str(self.plane.kubeconfig.parent / cluster["certificate-authority"])
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
            "current-context": "sa",
        }
        path = self.tmp / f"{namespace}-{account}.kubeconfig"
        path.write_text(json.dumps(config))
        return path


def apply(k: Kubectl, *objs: dict[str, Any], namespace: str | None = None, check: bool = True) -> Any:
    ns = ["-n", namespace] if namespace else []
    return k.run(
        "apply",
        *ns,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}),
        check=check,
    )


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    bindir = devcluster.default_bindir(devcluster.default_workdir(REPO))
    workdir = tmp_path_factory.mktemp("tenancy-plane")
    audit = workdir / "audit.log"
    flags = (
        f"--audit-policy-file={AUDIT_POLICY}",
        f"--audit-log-path={audit}",
        "--audit-log-format=json",
        "--audit-log-mode=batch",
        "--audit-log-batch-max-wait=1s",
        "--audit-log-maxbackup=0",
        "--audit-log-maxsize=0",
    )
    with devcluster.ControlPlane(workdir, bindir, apiserver_args=flags) as cp:
        admin = Kubectl(bindir / "kubectl", cp.kubeconfig)
        yield Plane(cp, admin, audit, workdir)


@pytest.fixture(scope="module")
def world(plane: Plane) -> Iterator[dict[str, Any]]:
    """CRDs, namespaces, the policies and their bindings, alice, the victim, and the operator running."""
    k = plane.admin
    install_crds(k)
    for ns in (TENANT, VICTIM, OPS):
        k.run("create", "namespace", ns)
    k.run("apply", "-f", str(POLICIES))
    params = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "oncall-admission", "namespace": OPS},
        "data": {"operatorUsers": OPERATOR, "operatorNamespace": OPS, "systemNamespaces": ""},
    }
    bindings = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"oncall.dev-{name}"},
            "spec": {
                "policyName": f"oncall.dev-{name}",
                "validationActions": ["Deny"],
                "paramRef": {"name": "oncall-admission", "namespace": OPS, "parameterNotFoundAction": "Deny"},
            },
        }
        for name in ("incident-trust", "operator-limits")
    ]
    apply(k, params, *bindings)
    # the operator: a ServiceAccount with cluster-wide power (what the chart's ClusterRole grants, and more)
    k.run("create", "serviceaccount", "operator", "-n", OPS)
    k.run(
        "create",
        "clusterrolebinding",
        "oncall-operator",
        "--clusterrole=cluster-admin",
        f"--serviceaccount={OPS}:operator",
    )
    # alice: a namespace user of tenant-a, who may write the handbook's objects and Incidents there
    k.run("create", "serviceaccount", "alice", "-n", TENANT)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "oncall-user", "namespace": TENANT},
        "rules": [
            {
                "apiGroups": ["oncall.dev"],
                "resources": ["incidents", "incidents/status", "runbooks", "escalationpolicies", "oncallschedules"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"],
            },
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "update", "patch"]},
        ],
    }
    apply(k, role, namespace=TENANT)
    k.run(
        "create", "rolebinding", "oncall-user", "-n", TENANT, "--role=oncall-user", f"--serviceaccount={TENANT}:alice"
    )
    # the victim: a Deployment in another team's namespace, and a Secret of alice's own namespace she cannot read
    victim = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": VICTIM},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": TENANT},
        "stringData": {"password": "hunter2"},
    }
    apply(k, victim, secret)
    alice = Kubectl(k.binary, plane.kubeconfig_for(TENANT, "alice"))
    assert alice.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == ALICE
    operator = OperatorProcess(
        plane.kubeconfig_for(OPS, "operator"),
        plane.tmp / "operator.log",
        env={
            "ONCALL_TICK_SECONDS": "0.5",
            "ONCALL_NAMESPACE": OPS,
            "ONCALL_PAGERDUTY_ENDPOINTS": "",
            "ONCALL_SMTP_HOSTS": "",
        },
    )
    operator.start()
    try:
        yield {"alice": alice, "admin": k, "operator": operator}
    finally:
        operator.stop()
        print(f"operator log (tail):\n{operator.log.read_text()[-3000:]}")


def incident(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Incident",
        "metadata": {"name": name, "namespace": TENANT},
        "spec": {"title": "hostile", "severity": "critical", **spec},
    }


SCALE_RUNBOOK = {
    "apiVersion": API,
    "kind": "Runbook",
    "metadata": {"name": "scale", "namespace": TENANT},
    "spec": {
        "trigger": {"alertName": "Anything"},
        "actions": [{"name": "up", "type": "scale", "scale": {"maxReplicas": 4, "step": 3}}],
    },
}


def refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode != 0, f"accepted: {proc.stdout}"
    assert "resulted in error" not in proc.stderr, proc.stderr  # refused by the rule, not by a broken expression
    for word in words:
        assert word in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_cross_namespace_routes_are_refused_and_the_operator_writes_nowhere_else(
    plane: Plane, world: dict[str, Any]
) -> None:
    alice: Kubectl = world["alice"]
    admin: Kubectl = world["admin"]
    started = time.time()
    with peers.ThreadedPeer() as attacker:  # alice's own "PagerDuty"
        apply(alice, SCALE_RUNBOOK, namespace=TENANT)
        target = {"kind": "Deployment", "namespace": VICTIM, "name": "web"}
        seen = {
            "target": refused(
                apply(alice, incident("scale-b", target=target, runbookRef={"name": "scale"}), check=False),
                "spec.target.namespace",
            ),
            "kube-system target": refused(
                apply(alice, incident("ks", target={**target, "namespace": "kube-system"}), check=False),
                "spec.target.namespace",
            ),
            "runbookRef": refused(
                apply(alice, incident("borrow-rb", runbookRef={"name": "x", "namespace": VICTIM}), check=False),
                "spec.runbookRef.namespace",
            ),
            "escalationPolicyRef": refused(
                apply(
                    alice, incident("borrow-pol", escalationPolicyRef={"name": "x", "namespace": VICTIM}), check=False
                ),
                "spec.escalationPolicyRef.namespace",
            ),
        }
        # a policy whose PagerDuty endpoint is alice's server and whose Secret is one she cannot read
        pol = {
            "apiVersion": API,
            "kind": "EscalationPolicy",
            "metadata": {"name": "exfil", "namespace": TENANT},
            "spec": {
                "levels": [{"name": "l1", "after": "0m", "targets": [{"user": "alice"}], "channels": ["pd"]}],
                "severities": [{"severity": "critical", "response": "Page", "responseTime": "5m", "channels": ["pd"]}],
                "channels": [
                    {
                        "name": "pd",
                        "type": "PagerDuty",
                        "secretRef": {"name": "db", "key": "password"},
                        "endpoint": attacker.url("/v2/enqueue"),
                    },
                ],
            },
        }
        apply(alice, pol)
        apply(alice, incident("page-me", escalationPolicyRef={"name": "exfil"}))

        def pol_ready() -> dict[str, Any] | None:
            conds = (
                json.loads(admin.run("get", "escpol", "exfil", "-n", TENANT, "-o", "json").stdout).get("status") or {}
            ).get("conditions") or []
            return next((c for c in conds if c["type"] == "Ready" and c["status"] == "False"), None)

        ready = eventually(pol_ready, 30, what="the policy's Ready=False")
        assert ready["reason"] == "ChannelNotAllowed" and "allowlist" in ready["message"], ready
        assert "not labelled oncall.dev/notifier" in ready["message"], ready

        def failed_page() -> list[dict[str, Any]] | None:
            inc = json.loads(admin.run("get", "incident", "page-me", "-n", TENANT, "-o", "json").stdout)
            notes = ((inc.get("status") or {}).get("escalation") or {}).get("notifications") or []
            return [n for n in notes if n["result"] == "Failed"] or None

        failures = eventually(failed_page, 30, what="the page refused at send time")
        assert "allowlist" in failures[0]["message"], failures
        seen["PagerDuty endpoint"] = failures[0]["message"]
        seen["Secret"] = ready["message"]
        # a Slack channel (no endpoint to judge) on the same Secret: refused when it would be read
        slack = {
            "apiVersion": API,
            "kind": "EscalationPolicy",
            "metadata": {"name": "exfil-slack", "namespace": TENANT},
            "spec": {
                **pol["spec"],
                "channels": [{"name": "pd", "type": "Slack", "secretRef": {"name": "db", "key": "password"}}],
            },
        }
        apply(alice, slack, incident("page-slack", escalationPolicyRef={"name": "exfil-slack"}))

        def failed_slack() -> list[dict[str, Any]] | None:
            inc = json.loads(admin.run("get", "incident", "page-slack", "-n", TENANT, "-o", "json").stdout)
            notes = ((inc.get("status") or {}).get("escalation") or {}).get("notifications") or []
            return [n for n in notes if n["result"] == "Failed"] or None

        slack_failures = eventually(failed_slack, 30, what="the Secret refused at send time")
        assert "not labelled oncall.dev/notifier" in slack_failures[0]["message"], slack_failures
        seen["Secret at send time"] = slack_failures[0]["message"]
        # without the admission policy (an Incident written by the operator's identity, which the policy
        # trusts) the operator still refuses: the executor's own rule, recorded on the Incident
        operator_k = Kubectl(admin.binary, world["operator"].kubeconfig)
        apply(operator_k, SCALE_RUNBOOK, incident("bypass", target=target, runbookRef={"name": "scale"}))

        def refusal() -> list[dict[str, Any]] | None:
            inc = json.loads(admin.run("get", "incident", "bypass", "-n", TENANT, "-o", "json").stdout)
            return [a for a in (inc.get("status") or {}).get("actions") or [] if a["state"] == "Refused"] or None

        acts = eventually(refusal, 30, what="the operator's own refusal")
        assert "TargetOutsideNamespace" in acts[0]["reason"] or "own namespace" in acts[0]["reason"], acts
        seen["operator executor"] = acts[0]["reason"]
        time.sleep(0)  # the attacker's server is asked nothing, ever
        assert attacker.hits == {} and attacker.accepted == [], attacker.hits

    replicas = json.loads(admin.run("get", "deployment", "web", "-n", VICTIM, "-o", "json").stdout)["spec"]["replicas"]
    assert replicas == 1
    writes = operator_writes(plane.audit, started)
    outside = [w for w in writes if w[1] not in (TENANT, OPS)]
    print("refusals:", json.dumps(seen, indent=1))
    print(
        f"operator writes by namespace: { {ns: sum(1 for w in writes if w[1] == ns) for ns in {w[1] for w in writes}} }"
    )
    assert outside == [], outside


def operator_writes(audit: pathlib.Path, since: float) -> list[tuple[str, str, str, int]]:
    """(verb, namespace, resource, code) of every write the operator's ServiceAccount sent, from the audit log."""

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]

    mark = time.time()
    eventually(lambda: any(_at(e) >= mark for e in read()), 15, what="the audit log flushed")
    found = []
    for e in read():
        if e["user"]["username"] != OPERATOR or e["verb"] not in ("create", "update", "patch", "delete"):
            continue
        if _at(e) < since:
            continue
        ref = e.get("objectRef") or {}
        found.append((e["verb"], ref.get("namespace", ""), ref.get("resource", ""), e["responseStatus"]["code"]))
    return found


def _at(event: dict[str, Any]) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()


def test_forged_status_is_refused_and_a_real_ack_is_recorded_as_the_api_server_saw_it(world: dict[str, Any]) -> None:
    alice: Kubectl = world["alice"]
    admin: Kubectl = world["admin"]
    apply(alice, incident("forge-me"))

    def opened() -> dict[str, Any] | None:
        inc = json.loads(admin.run("get", "incident", "forge-me", "-n", TENANT, "-o", "json").stdout)
        return inc if (inc.get("status") or {}).get("phase") else None

    eventually(opened, 30, what="the Incident opened by the operator")
    patches = {
        "acknowledgedBy": {"status": {"acknowledgedBy": "bob", "phase": "Acknowledged"}},
        "approval": {"status": {"approvals": [{"action": "up", "by": "bob", "at": "2026-12-01T00:00:00Z"}]}},
        "cooldown": {"status": {"guardrails": {"lastActionAt": "2000-01-01T00:00:00Z"}}},  # the cooldown long over
        "escalation": {"status": {"escalation": {"closed": True}}},
        "maxRaises": {"status": {"guardrails": {"raises": 0, "actionTimes": ["2000-01-01T00:00:00Z"]}}},
    }
    answers = {}
    for what, patch in patches.items():
        proc = alice.run(
            "patch",
            "incident",
            "forge-me",
            "-n",
            TENANT,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(patch),
            check=False,
        )
        answers[what] = refused(proc, "ValidatingAdmissionPolicy")
    print("forgeries:", json.dumps(answers, indent=1))
    # the real thing: kubectl oncall ack as alice records alice, as the API server authenticated her
    env_kubeconfig = str(alice.kubeconfig)
    proc = subprocess.run(
        [str(REPO / ".venv/bin/kubectl-oncall"), "-n", TENANT, "ack", "forge-me"],
        capture_output=True,
        text=True,
        env={"KUBECONFIG": env_kubeconfig, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    inc = json.loads(admin.run("get", "incident", "forge-me", "-n", TENANT, "-o", "json").stdout)
    assert inc["status"]["acknowledgedBy"] == ALICE


def test_a_flag_runbook_on_a_configmap_that_is_no_flag_store_is_refused(world: dict[str, Any]) -> None:
    """alice's Runbook names her namespace's ordinary ConfigMap (not labelled oncall.dev/feature-flags)."""
    alice: Kubectl = world["alice"]
    admin: Kubectl = world["admin"]
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "safe"}}
    flip = {
        "apiVersion": API,
        "kind": "Runbook",
        "metadata": {"name": "flip"},
        "spec": {
            "trigger": {"alertName": "Anything"},
            "actions": [
                {
                    "name": "flip",
                    "type": "setFeatureFlag",
                    "setFeatureFlag": {"configMap": "settings", "key": "mode", "value": "open"},
                }
            ],
        },
    }
    apply(alice, settings, flip, incident("flip-it", runbookRef={"name": "flip"}), namespace=TENANT)

    def refusal() -> list[dict[str, Any]] | None:
        inc = json.loads(admin.run("get", "incident", "flip-it", "-n", TENANT, "-o", "json").stdout)
        return [a for a in (inc.get("status") or {}).get("actions") or [] if a["state"] == "Refused"] or None

    acts = eventually(refusal, 30, what="NotAFlagStore")
    assert acts[0]["reason"].startswith("NotAFlagStore"), acts
    assert json.loads(admin.run("get", "configmap", "settings", "-n", TENANT, "-o", "json").stdout)["data"] == {
        "mode": "safe"
    }


def test_the_operators_own_identity_is_held_to_its_remediations(plane: Plane, world: dict[str, Any]) -> None:
    """oncall.dev-operator-limits, with the operator's own token: what its RBAC (cluster-admin here) would allow."""
    admin: Kubectl = world["admin"]
    op = Kubectl(admin.binary, world["operator"].kubeconfig)
    aws_auth = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": "[]"},
    }
    plain = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "plain", "namespace": TENANT},
        "data": {"a": "1"},
    }
    store = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "store", "namespace": TENANT, "labels": {"oncall.dev/feature-flags": "true"}},
        "data": {"a": "1"},
    }
    apply(admin, aws_auth, plain, store)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": TENANT},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    flag = json.dumps({"data": {"a": "2"}})
    answers = {
        "pod": refused(op.run("create", "-f", "-", stdin=json.dumps(pod), check=False), "dry-run"),
        "kube-system create": refused(
            op.run("create", "configmap", "x", "-n", "kube-system", "--from-literal=a=b", check=False), "kube-system"
        ),
        "aws-auth patch": refused(
            op.run("patch", "configmap", "aws-auth", "-n", "kube-system", "-p", flag, check=False), "kube-system"
        ),
        "unlabelled ConfigMap": refused(
            op.run("patch", "configmap", "plain", "-n", TENANT, "-p", flag, check=False), "oncall.dev/feature-flags"
        ),
    }
    print("operator limits:", json.dumps(answers, indent=1))
    assert op.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod)).returncode == 0
    assert op.run("patch", "configmap", "store", "-n", TENANT, "-p", flag).returncode == 0


def test_the_chart_is_secure_by_default(plane: Plane) -> None:
    """helm template with default values: the policies bound to the chart's ServiceAccount, a generated
    intake token the operator requires, an intake NetworkPolicy for Alertmanager only; all accepted
    by the API server (a server-side dry-run on this module's control plane)."""
    helm = helm_support.Helm(plane.plane.bindir / "helm")
    rendered = helm.template("r", "ops")
    docs = helm_support.documents(rendered)
    policies = {d["metadata"]["name"] for d in helm_support.find(docs, "ValidatingAdmissionPolicy")}
    bindings = helm_support.find(docs, "ValidatingAdmissionPolicyBinding")
    assert policies == {"oncall.dev-incident-trust", "oncall.dev-operator-limits"}
    assert {b["spec"]["policyName"] for b in bindings} == policies
    [params] = [d for d in helm_support.find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-admission")]
    assert params["data"]["operatorUsers"] == "system:serviceaccount:ops:r-oncall-operator"
    secrets = {d["metadata"]["name"]: d for d in helm_support.find(docs, "Secret", "ops")}
    assert set(secrets) == {"r-oncall-operator-intake", "r-oncall-operator-links"}
    token = secrets["r-oncall-operator-intake"]
    assert len(base64.b64decode(token["data"]["token"])) == 40
    assert len(base64.b64decode(secrets["r-oncall-operator-links"]["data"]["key"])) == 48
    [deployment] = helm_support.find(docs, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ONCALL_INTAKE_TOKEN_SECRET"] == token["metadata"]["name"]
    assert env["ONCALL_PAGERDUTY_ENDPOINTS"] == "https://events.pagerduty.com,https://events.eu.pagerduty.com"
    assert env["ONCALL_SMTP_HOSTS"] == ""
    [netpol] = helm_support.find(docs, "NetworkPolicy")
    sources = netpol["spec"]["ingress"][0]["from"]
    assert {s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in sources} == {
        "alertmanager",
        "prometheus",
    }
    assert all(s["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"} for s in sources)
    admission = [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    plane.admin.run("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(admission))
