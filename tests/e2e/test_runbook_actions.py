"""Runbook actions on alert Incidents against the real control plane: rollback, scale, flags, notify, approval.

The Deployment controller (kube-controller-manager) makes the ReplicaSets and their revisions;
the rollback is compared with what ``kubectl rollout undo`` writes: the template of the
ReplicaSet with the previous revision, without its ``pod-template-hash`` label (``kubectl rollout
undo --dry-run=server -o json`` prints the Deployment as it was, not as it would be, so it cannot
serve as the oracle).
Incidents are created directly with ``spec.runbookRef`` and ``spec.target``, as the intake
creates them (the intake itself is covered by test_intake.py), so each test is one object
away from the behaviour it checks. ``notify`` reaches a local webhook receiver of
``tests.peers``; the approval goes through the real ``kubectl oncall approve``. Where a
guardrail says no, the workload's resourceVersion shows that nothing was written.
"""

import datetime as dt
import hashlib
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO, clock_past, eventually
from tests.e2e import oom_support
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_kubectl_plugin import oncall
from tests.peers import Peer, ThreadedPeer

pytestmark = pytest.mark.timeout(120)
API = "oncall.dev/v1alpha1"


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with ThreadedPeer() as p:
        yield p


@pytest.fixture(autouse=True)
def _running(operator: OperatorProcess) -> None:
    """Every test here needs the module's operator."""


def apply(kubectl: Kubectl, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def deployment(name: str, image: str = "registry.k8s.io/pause:3.9", replicas: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, **meta},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def runbook(name: str, actions: list[dict[str, Any]], policy: str | None = None, **guard: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"trigger": {"alertName": name}, "actions": actions, "guardrails": guard}
    if policy:
        spec["escalationPolicyRef"] = {"name": policy}
    return {"apiVersion": API, "kind": "Runbook", "metadata": {"name": name.lower()}, "spec": spec}


def incident(
    name: str, runbook_name: str, namespace: str, target: str, kind: str = "Deployment", **labels: str
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {
            "title": f"{runbook_name} firing",
            "severity": "critical",
            "source": {"type": "Alertmanager", "alertName": runbook_name, "labels": labels},
            "target": {"kind": kind, "namespace": namespace, "name": target},
            "runbookRef": {"name": runbook_name.lower()},
        },
    }


def post_alert(
    operator: OperatorProcess, namespace: str, alertname: str, starts_at: str | None = None, **labels: str
) -> None:
    """An Alertmanager v4 webhook, straight to the operator's intake.

    ``starts_at`` repeats an earlier firing (Alertmanager keeps an alert's start); default: a new one now.
    """
    port = operator.http_port
    labels = {"alertname": alertname, "namespace": namespace, "severity": "critical", **labels}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{alertname} in {namespace}"},
        "startsAt": starts_at or dt.datetime.now(dt.UTC).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16],
    }
    payload = {
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": alertname},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager",
        "alerts": [alert],
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/alerts",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status < 300, answer.read()


def get(kubectl: Kubectl, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "-n", namespace, kind, name))


def caught_up(kubectl: Kubectl, namespace: str, name: str) -> None:
    """The positive marker before "nothing was written": a later change of the Incident, handled.

    Kopf hands one object's events to its handlers one at a time, in order. A new title is a new
    generation, which the operator acknowledges with ``status.observedGeneration`` (in its Ready
    write); once that shows, every handler has run on every earlier event of the Incident.
    """
    title = {"spec": {"title": f"{get(kubectl, namespace, 'incident', name)['spec']['title']} (edited)"}}
    kubectl.run("patch", "incident", name, "-n", namespace, "--type=merge", "-p", json.dumps(title))

    def handled() -> bool:
        inc = get(kubectl, namespace, "incident", name)
        return bool(inc["status"].get("observedGeneration") == inc["metadata"]["generation"])

    eventually(handled, 30, what=f"the operator handling the edit of Incident {name}")


def wait_action(kubectl: Kubectl, namespace: str, inc: str, action: str, state: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = get(kubectl, namespace, "incident", inc).get("status") or {}
        return next((a for a in status.get("actions", []) if a["action"] == action and a["state"] == state), None)

    return eventually(probe, 30, what=f"action {action} {state} on incident {inc}")


def revisions(kubectl: Kubectl, namespace: str, app: str) -> dict[int, dict[str, Any]]:
    items = kubectl.json("get", "-n", namespace, "replicasets", "-l", f"app={app}")["items"]
    return {int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]): rs for rs in items}


def two_revisions(kubectl: Kubectl, namespace: str, name: str) -> dict[int, dict[str, Any]]:
    apply(kubectl, namespace, deployment(name, "registry.k8s.io/pause:3.9"))
    eventually(lambda: 1 in revisions(kubectl, namespace, name), 30, what="revision 1")
    kubectl.run("set", "image", "-n", namespace, f"deployment/{name}", "app=registry.k8s.io/pause:3.10")

    def both() -> dict[int, dict[str, Any]] | None:
        found = revisions(kubectl, namespace, name)
        return found if len(found) == 2 else None

    return eventually(both, 30, what="revision 2")


def test_rollback_is_kubectl_rollout_undo(kubectl: Kubectl, namespace: str) -> None:
    old = two_revisions(kubectl, namespace, "api")[1]["spec"]["template"]
    del old["metadata"]["labels"]["pod-template-hash"]  # what kubectl rollout undo copies back
    rb = runbook(
        "APIErrorRateSLOCritical",
        [
            {"name": "rollback", "type": "rollback", "rollback": {"ifChangedWithin": "1h"}},
            {"name": "scale", "type": "scale", "scale": {"step": 1, "maxReplicas": 3}},
        ],
    )
    apply(kubectl, namespace, rb, incident("errors", "APIErrorRateSLOCritical", namespace, "api"))
    record = wait_action(kubectl, namespace, "errors", "rollback", "Applied")
    rolled = get(kubectl, namespace, "deployment", "api")
    assert rolled["spec"]["template"] == old
    assert rolled["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.9"
    assert (record["before"], record["after"]) == (
        "revision 2 (app=registry.k8s.io/pause:3.10)",
        "revision 1 (app=registry.k8s.io/pause:3.9)",
    )
    assert json.loads(record["patch"])[0]["op"] == "test"
    eventually(lambda: 3 in revisions(kubectl, namespace, "api"), 30, what="the controller's revision 3")
    status = get(kubectl, namespace, "incident", "errors")["status"]
    assert status["phase"] == "Mitigated"
    assert [a["action"] for a in status["actions"]] == ["rollback"]  # the list stopped at the applied action
    assert rolled["spec"]["replicas"] == 1
    events = kubectl.run("get", "events", "-n", namespace, "--field-selector", "reason=RolledBack").stdout
    assert "deployment/api" in events and "incident/errors" in events


def test_statefulset_rollback_uses_the_previous_controller_revision(kubectl: Kubectl, namespace: str) -> None:
    sts = deployment("db")
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    apply(kubectl, namespace, sts)

    def history() -> dict[int, dict[str, Any]]:
        items = kubectl.json("get", "-n", namespace, "controllerrevisions")["items"]
        return {int(cr["revision"]): cr for cr in items}

    eventually(lambda: 1 in history(), 30, what="controller revision 1")
    kubectl.run("set", "image", "-n", namespace, "statefulset/db", "app=registry.k8s.io/pause:3.10")
    old = eventually(lambda: history().get(2) and history()[1], 30, what="controller revision 2")
    expected = {k: v for k, v in old["data"]["spec"]["template"].items() if k != "$patch"}
    rb = runbook("DBErrors", [{"name": "rollback", "type": "rollback", "rollback": {"ifChangedWithin": "1h"}}])
    apply(kubectl, namespace, rb, incident("db-errors", "DBErrors", namespace, "db", kind="StatefulSet"))
    wait_action(kubectl, namespace, "db-errors", "rollback", "Applied")
    rolled = get(kubectl, namespace, "statefulset", "db")
    assert rolled["spec"]["template"] == expected
    assert rolled["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.k8s.io/pause:3.9"


def test_unchanged_deployment_is_scaled_instead(kubectl: Kubectl, namespace: str) -> None:
    newest = two_revisions(kubectl, namespace, "api")[2]["metadata"]["creationTimestamp"]
    clock_past(dt.datetime.fromisoformat(newest) + dt.timedelta(seconds=2), "the template's change older than 2s")
    rb = runbook(
        "APIErrorRateSLOCritical",
        [
            {"name": "rollback", "type": "rollback", "rollback": {"ifChangedWithin": "2s"}},
            {"name": "scale", "type": "scale", "scale": {"step": 5, "maxReplicas": 3}},
        ],
    )
    apply(kubectl, namespace, rb, incident("errors", "APIErrorRateSLOCritical", namespace, "api"))
    record = wait_action(kubectl, namespace, "errors", "scale", "Applied")
    assert (record["before"], record["after"]) == ("replicas=1", "replicas=3")  # bounded by maxReplicas
    assert get(kubectl, namespace, "deployment", "api")["spec"]["replicas"] == 3
    status = get(kubectl, namespace, "incident", "errors")["status"]
    [refused] = [a for a in status["actions"] if a["action"] == "rollback"]
    assert refused["state"] == "Refused" and refused["reason"].startswith("NotChangedRecently")


def test_feature_flag_named_by_the_alert_is_switched_off(kubectl: Kubectl, namespace: str) -> None:
    flags = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags", "labels": {"oncall.dev/feature-flags": "true"}},
        "data": {"new-checkout": "true"},
    }
    apply(kubectl, namespace, flags, deployment("api"))
    rb = runbook(
        "APIErrorRateSLOCritical",
        [
            {
                "name": "flag-off",
                "type": "setFeatureFlag",
                "setFeatureFlag": {"configMap": "flags", "keyFromLabel": "feature_flag", "value": "false"},
            },
            {"name": "scale", "type": "scale", "scale": {"step": 1, "maxReplicas": 3}},
        ],
    )
    inc = incident("errors", "APIErrorRateSLOCritical", namespace, "api", feature_flag="new-checkout")
    apply(kubectl, namespace, rb, inc)
    record = wait_action(kubectl, namespace, "errors", "flag-off", "Applied")
    assert (record["before"], record["after"]) == ("new-checkout=true", "new-checkout=false")
    assert get(kubectl, namespace, "configmap", "flags")["data"] == {"new-checkout": "false"}
    assert get(kubectl, namespace, "deployment", "api")["spec"]["replicas"] == 1  # the flag was enough


def test_notify_then_approval_from_an_alert(
    kubectl: Kubectl, namespace: str, peer: Peer, operator: OperatorProcess
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hooks", "labels": {"oncall.dev/notifier": "true"}},
        "stringData": {"pages": peer.url(f"/hook/pages-{namespace}"), "compliance": peer.url(f"/hook/c-{namespace}")},
    }
    policy = {
        "apiVersion": API,
        "kind": "EscalationPolicy",
        "metadata": {"name": "policy"},
        "spec": {
            "levels": [{"name": "l1", "after": "0m", "targets": [{"team": "compliance"}], "channels": ["pages"]}],
            "channels": [
                {"name": "pages", "type": "Webhook", "secretRef": {"name": "hooks", "key": "pages"}},
                {"name": "compliance", "type": "Webhook", "secretRef": {"name": "hooks", "key": "compliance"}},
            ],
            "severities": [{"severity": "critical", "response": "Page", "responseTime": "5m", "channels": ["pages"]}],
            "teams": [{"name": "compliance", "channel": "compliance"}],
        },
    }
    flags = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "flags", "labels": {"oncall.dev/feature-flags": "true"}},
        "data": {"block": "false"},
    }
    rb = runbook(
        "ComplianceViolationRateHigh",
        [
            {"name": "tell-compliance", "type": "notify", "notify": {"team": "compliance", "message": "violations"}},
            {
                "name": "block",
                "type": "setFeatureFlag",
                "approval": "Required",
                "setFeatureFlag": {"configMap": "flags", "key": "block", "value": "true"},
            },
        ],
        policy="policy",
    )
    rb["spec"]["steps"] = [{"title": "Check the compliance dashboard"}]
    apply(kubectl, namespace, secret, policy, flags, deployment("api"), rb)
    post_alert(operator, namespace, "ComplianceViolationRateHigh", deployment="api")
    [found] = eventually(lambda: kubectl.json("get", "incidents", "-n", namespace)["items"], 30, what="the Incident")
    name = found["metadata"]["name"]
    wait_action(kubectl, namespace, name, "tell-compliance", "Applied")
    [notice] = peer.accepted_at(f"/hook/c-{namespace}")
    assert notice["kind"] == "notify" and "violations" in json.dumps(notice)
    wait_action(kubectl, namespace, name, "block", "AwaitingApproval")
    before = get(kubectl, namespace, "configmap", "flags")["metadata"]["resourceVersion"]
    caught_up(kubectl, namespace, name)  # every event up to the wait handled: nothing written meanwhile
    assert get(kubectl, namespace, "configmap", "flags")["metadata"]["resourceVersion"] == before
    timeline = [e["type"] for e in get(kubectl, namespace, "incident", name)["status"]["timeline"]]
    assert "NotifyDelivered" in timeline and "ActionAwaitingApproval" in timeline
    # claimed on the Incident before it was sent, like a page, so a crash in between re-sends it
    notes = get(kubectl, namespace, "incident", name)["status"]["escalation"]["notifications"]
    [told] = [n for n in notes if n["kind"] == "action-notify"]
    assert told["result"] == "Delivered" and told["key"].startswith("action/tell-compliance/")

    approved = oncall(kubectl, namespace, "approve", name, "block")
    assert approved.returncode == 0, approved.stderr
    wait_action(kubectl, namespace, name, "block", "Applied")
    assert get(kubectl, namespace, "configmap", "flags")["data"] == {"block": "true"}
    status = get(kubectl, namespace, "incident", name)["status"]
    [approval] = status["approvals"]
    assert approval["action"] == "block" and approval["by"] and approval["by"] != "unknown"
    again = oncall(kubectl, namespace, "approve", name, "nothing-waits")
    assert again.returncode == 1 and "not awaiting approval" in again.stderr

    checked = oncall(kubectl, namespace, "check", name, "1")
    assert checked.returncode == 0, checked.stderr
    [item] = get(kubectl, namespace, "incident", name)["status"]["checklist"]
    assert item["done"] is True and item["by"] == approval["by"]


@pytest.mark.parametrize(
    ("case", "reason", "state"),
    [
        ("opt-out", "OptedOut", "Refused"),
        ("dry-run", "DryRun", "DryRun"),
        ("hpa", "HPAManaged", "Refused"),
        ("at-max", "AtMaxReplicas", "Refused"),
    ],
)
def test_nothing_written_where_a_guardrail_says_no(
    kubectl: Kubectl, namespace: str, case: str, reason: str, state: str
) -> None:
    annotations = {"oncall.dev/remediation": "disabled"} if case == "opt-out" else {}
    apply(kubectl, namespace, deployment("api", replicas=3 if case == "at-max" else 1, annotations=annotations))
    if case == "hpa":
        hpa = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                "minReplicas": 1,
                "maxReplicas": 4,
            },
        }
        apply(kubectl, namespace, hpa)
    rb = runbook(
        "HighLoad",
        [{"name": "scale", "type": "scale", "scale": {"step": 1, "maxReplicas": 3}}],
        dryRun=case == "dry-run",
    )
    apply(kubectl, namespace, rb)
    settled = oom_support.settled(lambda: get(kubectl, namespace, "deployment", "api"), "the Deployment")
    before = settled["metadata"]["resourceVersion"]
    apply(kubectl, namespace, incident("load", "HighLoad", namespace, "api"))
    record = wait_action(kubectl, namespace, "load", "scale", state)
    assert record["reason"].startswith(reason)
    after = get(kubectl, namespace, "deployment", "api")
    assert after["metadata"]["resourceVersion"] == before and after["spec"] == settled["spec"]


def test_the_handbook_runbooks_in_examples(
    kubectl: Kubectl, namespace: str, peer: Peer, operator: OperatorProcess
) -> None:
    """examples/ as shipped, with the channels' Secrets (and PagerDuty's endpoint) pointed at local receivers."""
    for name in ("notifier-secrets", "schedule", "escalation-policy", "runbooks"):
        kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples" / f"{name}.yaml"))
    slack = "/services/ok/T000/B000/XXXXSECRETXXXX"
    secrets = [
        {
            "metadata": {"name": "oncall-slack", "labels": {"oncall.dev/notifier": "true"}},
            "stringData": {"webhookURL": peer.url(slack)},
        },
        {
            "metadata": {"name": "oncall-pagerduty", "labels": {"oncall.dev/notifier": "true"}},
            "stringData": {"routingKey": "R0UT1NGKEY0000000000000000000003"},
        },
    ]
    apply(kubectl, namespace, *({"apiVersion": "v1", "kind": "Secret", **s} for s in secrets))
    channels = get(kubectl, namespace, "escalationpolicy", "valeo-escalation")["spec"]["channels"]
    index = next(i for i, c in enumerate(channels) if c["name"] == "pagerduty")
    endpoint = [{"op": "add", "path": f"/spec/channels/{index}/endpoint", "value": peer.url("/v2/enqueue")}]
    kubectl.run(
        "patch", "-n", namespace, "escalationpolicy", "valeo-escalation", "--type=json", "-p", json.dumps(endpoint)
    )
    flags = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "valeo-feature-flags", "labels": {"oncall.dev/feature-flags": "true"}},
        "data": {"new-checkout": "true"},
    }
    apply(kubectl, namespace, flags, deployment("valeo-app"))

    def incident_of(alertname: str, **labels: str) -> str:
        post_alert(operator, namespace, alertname, **labels)

        def probe() -> str | None:
            items = kubectl.json("get", "incidents", "-n", namespace, "-l", f"oncall.dev/alertname={alertname}")
            found = [
                i["metadata"]["name"]
                for i in items["items"]
                if i["spec"]["source"]["labels"]
                == labels | {"alertname": alertname, "namespace": namespace, "severity": "critical"}
            ]
            return found[0] if found else None

        return eventually(probe, 30, what=f"the Incident of {alertname}")

    # Runbook 1, a feature bug: the alert names the flag -> the flag is switched off, nothing else
    errors = incident_of("APIErrorRateSLOCritical", deployment="valeo-app", feature_flag="new-checkout")
    wait_action(kubectl, namespace, errors, "disable-feature-flag", "Applied")
    assert get(kubectl, namespace, "configmap", "valeo-feature-flags")["data"] == {"new-checkout": "false"}
    # Runbook 1, no flag named and a Deployment with one revision: nothing to roll back -> scale up
    slow = incident_of("APIErrorRateSLOCritical", deployment="valeo-app", instance="b")
    wait_action(kubectl, namespace, slow, "scale-up", "Applied")
    assert get(kubectl, namespace, "deployment", "valeo-app")["spec"]["replicas"] == 2
    reasons = [a["reason"].split(":")[0] for a in get(kubectl, namespace, "incident", slow)["status"]["actions"]]
    assert reasons == ["NoFlagLabel", "NoPreviousRevision", "Applied"]
    # Runbook 2 on an alert: the memory actions are the OOM watch's; refused with the reason, nothing written
    oom = incident_of("PodOOMKilled", deployment="valeo-app")
    wait_action(kubectl, namespace, oom, "restart", "Refused")
    states = [
        (a["action"], a["reason"].split(":")[0]) for a in get(kubectl, namespace, "incident", oom)["status"]["actions"]
    ]
    assert states == [("raise-memory", "NotForAlerts"), ("restart", "NotForAlerts")]
    # Runbook 3: the manual steps as the checklist, and the Database Team told on its Slack channel
    pool = incident_of("ConnectionPoolExhaustion", deployment="valeo-app")
    wait_action(kubectl, namespace, pool, "notify-database-team", "Applied")
    assert len(get(kubectl, namespace, "incident", pool)["status"]["checklist"]) == 4
    texts = [json.dumps(m) for m in peer.accepted_at(slack)]
    assert any("Connection pool exhausted" in t for t in texts)
