"""Alerts end to end: a real Alertmanager -> the operator's intake -> an Incident that pages and resolves.

Alertmanager v0.31.1 (built from its Go module) is configured with one webhook receiver pointing
at the operator's intake with a bearer token from a Secret; alerts are posted to it as
Prometheus would (amtool, or its API v2). The operator runs as ``oncall-operator run`` with its
own intake port and its own operator namespace. PagerDuty is the local receiver of
``tests.peers``. Metrics are scraped from the operator's ``/metrics`` and parsed with
prometheus-client's text parser; every count is compared with what the test did.
"""

import datetime as dt
import json
import pathlib
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oncall_operator import devcluster
from oncall_operator.adapters import intake as intake_app
from tests.conftest import eventually
from tests.e2e.alertmanager_support import Alertmanager, rfc3339
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_kubectl_plugin import oncall
from tests.peers import Peer, ThreadedPeer

pytestmark = pytest.mark.timeout(180)
TOKEN = "e2e-intake-token-" + uuid.uuid4().hex
ROUTING_KEY = "R0UT1NGKEY0000000000000000000002"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Intake:
    def __init__(self, operator: OperatorProcess, port: int, namespace: str) -> None:
        self.operator, self.url, self.namespace = operator, f"http://127.0.0.1:{port}", namespace

    @property
    def webhook(self) -> str:
        return f"{self.url}/api/v1/alerts"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return 0, str(error)

    def metrics(self) -> Samples:
        status, text = self.get("/metrics")
        assert status == 200, text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with ThreadedPeer() as p:
        yield p


def operator_home(kubectl: Kubectl, prefix: str, token: str) -> tuple[str, dict[str, str]]:
    """A fresh operator namespace holding the intake's token Secret, and the environment naming both."""
    home = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", home)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "intake"}, "stringData": {"token": token}}
    kubectl.run("apply", "-n", home, "-f", "-", stdin=json.dumps(secret))
    return home, {"ONCALL_INTAKE_TOKEN_SECRET": "intake", "ONCALL_NAMESPACE": home}


@pytest.fixture(scope="module")
def intake(
    control_plane: devcluster.ControlPlane, crds: None, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Intake]:
    """The operator with its intake on a free port, token auth, and an operator namespace of its own."""
    home, env = operator_home(kubectl, "oncall-intake", TOKEN)
    env["ONCALL_TICK_SECONDS"] = "0.5"
    process = OperatorProcess(control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", env)
    process.start()
    found = Intake(process, process.http_port, home)
    try:
        eventually(lambda: found.get("/readyz")[0] == 200, 30, what="the intake ready")
        yield found
    finally:
        process.stop()
        kubectl.run("delete", "namespace", home, "--wait=false", check=False)


@pytest.fixture
def alertmanagers(intake: Intake, tmp_path: pathlib.Path) -> Iterator[Callable[[int], list[Alertmanager]]]:
    started: list[Alertmanager] = []

    def start(n: int) -> list[Alertmanager]:
        for i in range(n):
            started.append(Alertmanager(tmp_path / f"am{len(started)}-{i}", intake.webhook, TOKEN).start())
        return started[-n:]

    try:
        yield start
    finally:
        for am in started:
            am.stop()
        left = [am.port for am in started if am.proc is not None and am.proc.poll() is None]
        assert not left, f"alertmanagers left running: {left}"


def handbook(kubectl: Kubectl, namespace: str, peer: Peer, alertname: str, runbook: str) -> None:
    """A PagerDuty-only escalation policy and a runbook for ``alertname`` in ``namespace``."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pd", "labels": {"oncall.dev/notifier": "true"}},
            "stringData": {"routingKey": ROUTING_KEY},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "fast"},
            "spec": {
                "ackTimeout": "1h",
                "levels": [{"name": "l1", "after": "0", "targets": [{"user": "Ada"}], "channels": ["pagerduty"]}],
                "channels": [
                    {
                        "name": "pagerduty",
                        "type": "PagerDuty",
                        "secretRef": {"name": "pd", "key": "routingKey"},
                        "endpoint": peer.url("/v2/enqueue"),
                    }
                ],
                "severities": [
                    {"severity": level, "response": "Page", "channels": ["pagerduty"]}
                    for level in ("critical", "warning")
                ],
            },
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "Runbook",
            "metadata": {"name": runbook},
            "spec": {
                "trigger": {"alertName": alertname, "matchers": [{"label": "team", "value": "backend"}]},
                "severity": "warning",
                "escalationPolicyRef": {"name": "fast"},
                "steps": [{"title": "Check the logs"}, {"title": "Roll back if a release went out"}],
            },
        },
    ]
    for obj in objects:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def incidents(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "incidents", "-n", namespace)["items"])


def pd_events(peer: Peer, namespace: str) -> list[str]:
    return [e["event_action"] for e in peer.accepted_at("/v2/enqueue") if f"oncall.dev/{namespace}/" in e["dedup_key"]]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def board_matches_the_cluster(kubectl: Kubectl, intake: Intake) -> bool:
    """``oncall_incidents_open`` equals what ``kubectl get incidents -A`` shows, for every severity and phase."""
    counts: dict[tuple[str, str], int] = {}
    for item in kubectl.json("get", "incidents", "-A")["items"]:
        phase = (item.get("status") or {}).get("phase")
        if phase and phase != "Resolved":
            key = (item["spec"]["severity"], phase)
            counts[key] = counts.get(key, 0) + 1
    gauge = {
        (dict(labels)["severity"], dict(labels)["phase"]): value
        for (name, labels), value in intake.metrics().items()
        if name == "oncall_incidents_open"
    }
    return all(gauge.get(k, 0) == v for k, v in counts.items()) and sum(gauge.values()) == sum(counts.values())


def test_an_alert_opens_an_incident_that_pages_and_resolves_with_it(
    kubectl: Kubectl, namespace: str, peer: Peer, intake: Intake, alertmanagers: Callable[[int], list[Alertmanager]]
) -> None:
    handbook(kubectl, namespace, peer, "APIErrorRate", "api-errors")
    [am] = alertmanagers(1)
    before = intake.metrics()
    start = rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    labels = ["alertname=APIErrorRate", "team=backend", "severity=critical", f"namespace={namespace}", "deployment=api"]
    summary = "--annotation=summary=API error rate above 1%"
    am.amtool("alert", "add", *labels, summary, f"--start={start}")

    [inc] = eventually(lambda: incidents(kubectl, namespace), 30, what="the Incident")
    spec, name = inc["spec"], inc["metadata"]["name"]
    assert name.startswith("am-apierrorrate-")
    assert (spec["severity"], spec["title"]) == ("critical", "API error rate above 1%")
    assert spec["runbookRef"] == {"name": "api-errors"} and spec["escalationPolicyRef"] == {"name": "fast"}
    assert spec["target"] == {"kind": "Deployment", "namespace": namespace, "name": "api", "container": ""}
    assert spec["source"]["type"] == "Alertmanager"
    assert spec["source"]["groupKey"] == f'{{}}:{{alertname="APIErrorRate", namespace="{namespace}"}}'
    assert eventually(lambda: pd_events(peer, namespace), 30, what="the page") == ["trigger"]
    status = kubectl.json("get", f"incident/{name}", "-n", namespace)["status"]
    assert [c["title"] for c in status["checklist"]] == ["Check the logs", "Roll back if a release went out"]
    assert (status["phase"], status["occurrences"], status["onCall"]) == ("Triggered", 1, "Ada")
    assert eventually(lambda: board_matches_the_cluster(kubectl, intake), 30, what="the open-incident gauge")

    assert oncall(kubectl, namespace, "ack", name).returncode == 0
    eventually(lambda: pd_events(peer, namespace) == ["trigger", "acknowledge"], 30, what="the acknowledgement")
    ended = rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    am.amtool("alert", "add", *labels, summary, f"--start={start}", f"--end={ended}")
    done = eventually(
        lambda: (s := kubectl.json("get", f"incident/{name}", "-n", namespace)["status"])["phase"] == "Resolved" and s,
        30,
        what="the Incident resolved by Alertmanager",
    )
    assert done["resolvedBy"] == "alertmanager"
    assert any(e["type"] == "Resolved" and "Alertmanager" in e["message"] for e in done["timeline"])
    eventually(lambda: pd_events(peer, namespace) == ["trigger", "acknowledge", "resolve"], 30, what="PD resolve")
    assert eventually(lambda: board_matches_the_cluster(kubectl, intake), 30, what="the gauge after resolution")

    after = intake.metrics()
    assert delta(before, after, "oncall_alerts_received_total", status="firing") == 1
    assert delta(before, after, "oncall_alerts_received_total", status="resolved") == 1
    assert delta(before, after, "oncall_intake_requests_total", code="200") == 2
    assert delta(before, after, "oncall_escalations_total", level="1") == 1
    assert delta(before, after, "oncall_notifications_total", channel="pagerduty", result="delivered") == 3
    for histogram in ("oncall_incident_time_to_acknowledge_seconds", "oncall_incident_time_to_resolve_seconds"):
        assert delta(before, after, f"{histogram}_count", severity="critical") == 1
    mtta = delta(before, after, "oncall_incident_time_to_acknowledge_seconds_sum", severity="critical")
    mttr = delta(before, after, "oncall_incident_time_to_resolve_seconds_sum", severity="critical")
    assert 0 <= mtta <= mttr < 120


def test_two_alertmanagers_make_one_incident_which_reopens_when_the_alert_fires_again(
    kubectl: Kubectl, namespace: str, peer: Peer, intake: Intake, alertmanagers: Callable[[int], list[Alertmanager]]
) -> None:
    # No namespace label: the Incident and its runbook are in the operator's namespace.
    alertname = f"QueueBacklog{uuid.uuid4().hex[:4]}"
    handbook(kubectl, intake.namespace, peer, alertname, f"backlog-{namespace[-6:]}")
    pair = alertmanagers(2)
    before = intake.metrics()
    first = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)

    def alert(starts: dt.datetime, ends: dt.datetime | None = None) -> dict[str, Any]:
        body = {
            "labels": {"alertname": alertname, "team": "backend", "queue": "orders"},
            "annotations": {"summary": "orders queue backlog"},
            "startsAt": rfc3339(starts),
            "generatorURL": "http://prometheus.example/graph",
        }
        return {**body, "endsAt": rfc3339(ends)} if ends else body

    for am in pair:  # Prometheus sends every alert to every Alertmanager
        am.post(alert(first))
    eventually(lambda: all(am.webhook_deliveries() >= 1 for am in pair), 30, what="both Alertmanagers delivered")
    mine = [i for i in incidents(kubectl, intake.namespace) if i["spec"]["source"].get("alertName") == alertname]
    assert len(mine) == 1, [i["metadata"]["name"] for i in mine]
    name = mine[0]["metadata"]["name"]
    assert mine[0]["spec"]["runbookRef"] == {"name": f"backlog-{namespace[-6:]}"}
    assert mine[0]["spec"]["severity"] == "warning"  # no severity label: the runbook's
    eventually(lambda: pd_events(peer, intake.namespace).count("trigger") >= 1, 30, what="the page")

    def status() -> dict[str, Any]:
        return dict(kubectl.json("get", f"incident/{name}", "-n", intake.namespace)["status"])

    assert status()["occurrences"] == 1

    now = dt.datetime.now(dt.UTC)
    for am in pair:
        am.post(alert(first, now - dt.timedelta(seconds=1)))
    eventually(lambda: status()["phase"] == "Resolved", 30, what="resolved")
    eventually(lambda: all(am.webhook_deliveries() >= 2 for am in pair), 30, what="both delivered the resolution")
    assert status()["phase"] == "Resolved"

    for am in pair:  # the same alert firing again: a new startsAt
        am.post(alert(now))
    eventually(lambda: status()["phase"] == "Reopened", 30, what="reopened")
    eventually(lambda: pd_events(peer, intake.namespace).count("trigger") == 2, 30, what="the second page")
    eventually(lambda: all(am.webhook_deliveries() >= 3 for am in pair), 30, what="both delivered the new firing")
    st = status()
    assert (st["phase"], st["occurrences"]) == ("Reopened", 2)
    assert [e["type"] for e in st["timeline"]].count("Reopened") == 1
    assert len([i for i in incidents(kubectl, intake.namespace) if i["metadata"]["name"] == name]) == 1

    after = intake.metrics()
    assert delta(before, after, "oncall_intake_requests_total", code="200") == 6  # 3 notifications x 2 replicas
    assert delta(before, after, "oncall_alerts_received_total", status="firing") == 4
    assert delta(before, after, "oncall_alerts_received_total", status="resolved") == 2
    assert delta(before, after, "oncall_escalations_total", level="1") == 2
    assert delta(before, after, "oncall_incident_time_to_resolve_seconds_count", severity="warning") == 1


def test_the_intake_refuses_what_alertmanager_would_never_retry(intake: Intake) -> None:
    def post(body: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(intake.webhook, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert post(b"{}", None)[0] == 401
    assert post(b"{}", "wrong")[0] == 401
    assert post(b"{}", TOKEN) == (400, {"error": "version: is required", "field": "version"})
    assert post(b"x" * (intake_app.MAX_BYTES + 1), TOKEN)[0] == 413  # 8 MiB: the hard cap
    assert intake.get("/healthz")[0] == 200 and intake.get("/readyz")[0] == 200
