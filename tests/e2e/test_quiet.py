"""Quiet on purpose, loud when monitoring dies: maintenance windows and heartbeats end to end.

One operator (``oncall-operator run``, ticking every half second) with its intake on a free
port and a bearer token; PagerDuty is the local receiver of ``tests.peers``; the test plays the
kubelet for OOM kills (``tests.e2e.oom_support``). The heartbeat test runs a real Alertmanager
v0.31.1 with the documented Watchdog route (its own receiver, a short ``repeat_interval``),
stops it, and starts it again.
"""

import datetime as dt
import json
import pathlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator import devcluster
from oncall_operator.domain import oom_incident
from tests.conftest import eventually
from tests.e2e.alertmanager_support import Alertmanager, free_port, rfc3339
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.oom_support import Cluster, runbook, workload
from tests.e2e.test_kubectl_plugin import oncall
from tests.e2e.test_oom_remediation import cluster
from tests.peers import Peer, ThreadedPeer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
assert cluster  # the fixture, shared with the OOM tests
TOKEN = "e2e-quiet-token-" + uuid.uuid4().hex
ROUTING_KEY = "R0UT1NGKEY0000000000000000000003"
TICK = 0.5
D = "Deployment"


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with ThreadedPeer() as p:
        yield p


@pytest.fixture(scope="module")
def home(kubectl: Kubectl) -> Iterator[str]:
    name = f"oncall-quiet-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "intake"}, "stringData": {"token": TOKEN}}
    kubectl.run("apply", "-n", name, "-f", "-", stdin=json.dumps(secret))
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def op(
    control_plane: devcluster.ControlPlane, crds: None, home: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, str]]:
    port = free_port()
    env = {
        "ONCALL_NAMESPACE": home,
        "ONCALL_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "ONCALL_INTAKE_TOKEN_SECRET": "intake",
        "ONCALL_TICK_SECONDS": str(TICK),
    }
    process = OperatorProcess(control_plane.kubeconfig, tmp_path_factory.mktemp("quiet") / "operator.log", env)
    process.start()
    try:
        yield process, f"http://127.0.0.1:{port}/api/v1/alerts"
    finally:
        process.stop()
        if "Traceback" in process.log.read_text():
            print(f"operator log (tail):\n{process.log.read_text()[-6000:]}")


def policy(peer: Peer, levels: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A PagerDuty-only policy ``fast`` (and its Secret): L1 at once, unless ``levels`` say otherwise."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "pd",
                "labels": {"oncall.dev/notifier": "true"},
            },  # channels read only opted-in Secrets
            "stringData": {"routingKey": ROUTING_KEY},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "fast"},
            "spec": {
                "ackTimeout": "1h",
                "levels": levels or [{"name": "l1", "after": "0", "targets": [{"user": "Ada"}]}],
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
    ]


def paging_oom_runbook() -> dict[str, Any]:
    rb = runbook()
    rb["spec"].update(severity="critical", escalationPolicyRef={"name": "fast"})
    return rb


def window(name: str, start: dt.datetime, end: dt.datetime, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "MaintenanceWindow",
        "metadata": {"name": name},
        "spec": {"start": rfc3339(start), "end": rfc3339(end), **spec},
    }


def pd_triggers(peer: Peer, namespace: str) -> int:
    events = peer.accepted_at("/v2/enqueue")
    return sum(1 for e in events if e["event_action"] == "trigger" and f"oncall.dev/{namespace}/" in e["dedup_key"])


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def test_a_window_mutes_the_page_and_pauses_the_oom_remediation_in_its_namespace_only(
    cluster: Cluster, kubectl: Kubectl, namespace: str, peer: Peer, op: tuple[OperatorProcess, str]
) -> None:
    quiet, loud = namespace, f"{namespace[:50]}-loud"
    kubectl.run("create", "namespace", loud)
    try:
        now = dt.datetime.now(dt.UTC)
        # `loud` is at its runbook's cap (1Gi), so its Incident needs a human and pages; a remediated one
        # would be Mitigated, which pages nobody
        for ns, limit in ((quiet, "200Mi"), (loud, "1Gi")):
            cluster.apply(ns, *policy(peer), paging_oom_runbook(), workload(D, "db", limit))
        # the planned migration in `quiet`; and a namespace user's try at silencing `loud` from there
        cluster.apply(
            quiet,
            window(
                "migration", now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=30), reason="schema migration"
            ),
        )
        cluster.apply(
            quiet,
            window(
                "hostile", now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=30), scope={"namespaces": [loud]}
            ),
        )
        mw = eventually(
            lambda: (o := kubectl.json("get", "mw/migration", "-n", quiet)).get("status", {}).get("active") and o,
            30,
            what="the window active",
        )
        assert mw["status"]["nextEnd"] == rfc3339(now + dt.timedelta(minutes=30))[:19] + "Z"
        hostile = eventually(
            lambda: condition(kubectl.json("get", "mw/hostile", "-n", quiet), "Ready"),
            30,
            what="the hostile window's Ready",
        )
        assert (hostile["status"], hostile["reason"]) == ("False", "NamespacesNotAllowed")

        for ns in (quiet, loud):
            cluster.kill(ns, cluster.wait_pod(ns, "app=db"))

        # outside the window: the guardrails as usual (at the cap: a human is needed), and the page
        eventually(lambda: pd_triggers(peer, loud) == 1, 30, what="the page outside the window")
        outside = cluster.wait_incident(loud, D, "db", "refused at the cap", action="AtCap")
        assert condition(outside, "InMaintenance") == {}

        # inside: the Incident opens and records everything, the change is refused, the page is held
        def held() -> dict[str, Any] | None:
            inc = cluster.incident(quiet, D, "db") or {}
            status = inc.get("status") or {}
            kinds = [e["type"] for e in status.get("timeline") or []]
            return inc if "Maintenance" in kinds and status.get("actions") else None

        inc = eventually(held, 30, what="the held page and the paused action on the Incident")
        status = inc["status"]
        [action] = status["actions"]
        assert action["state"] == "Refused" and action["reason"].startswith("Maintenance:")
        assert f"MaintenanceWindow {quiet}/migration (schema migration)" in action["reason"]
        in_mw = condition(inc, "InMaintenance")
        assert in_mw["status"] == "True" and f"{quiet}/migration" in in_mw["message"]
        assert not any(c["type"] == "NeedsHuman" and c["status"] == "True" for c in status["conditions"])
        assert status["phase"] == "Triggered" and status["occurrences"] == 1
        assert cluster.workload(D, quiet, "db")["spec"]["template"]["spec"]["containers"][0]["resources"] == {
            "limits": {"memory": "200Mi"}
        }
        assert pd_triggers(peer, quiet) == 0  # the decision to hold is on the Incident: nothing went out
        assert pd_triggers(peer, loud) == 1  # the hostile window did not mute `loud`
        name = oom_incident.incident_name(D, quiet, "db")
        assert "pages muted by MaintenanceWindow" in oncall(kubectl, quiet, "timeline", name).stdout
    finally:
        kubectl.run("delete", "namespace", loud, "--wait=false", check=False)


def test_an_escalation_running_when_a_window_starts_stops_and_resumes_after_it(
    kubectl: Kubectl, namespace: str, peer: Peer, op: tuple[OperatorProcess, str]
) -> None:
    levels = [
        {"name": "l1", "after": "0", "targets": [{"user": "Ada"}]},
        {"name": "l2", "after": "30s", "targets": [{"user": "Bob"}]},  # due inside the window
    ]
    for obj in policy(peer, levels):
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
    inc = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "checkout-down"},
        "spec": {"title": "checkout down", "severity": "critical", "escalationPolicyRef": {"name": "fast"}},
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(inc))
    eventually(lambda: pd_triggers(peer, namespace) == 1, 30, what="level 1")
    started = oncall(kubectl, namespace, "maintenance", "start", "hotfix", "--for", "10m", "--reason", "hotfix")
    assert started.returncode == 0, started.stderr
    assert "mutes All until" in started.stdout

    def get() -> dict[str, Any]:
        return dict(kubectl.json("get", "incident/checkout-down", "-n", namespace))

    # level 2 comes due inside the window: held, said once on the Incident
    eventually(lambda: condition(get(), "InMaintenance").get("status") == "True", 60, what="level 2 held")
    assert pd_triggers(peer, namespace) == 1
    assert [e["type"] for e in get()["status"]["timeline"]].count("Maintenance") == 1

    stopped = oncall(kubectl, namespace, "maintenance", "stop", "hotfix")
    assert stopped.returncode == 0 and "stopped at" in stopped.stdout, stopped.stderr
    # after it: the escalation starts again from level 1, then level 2 follows
    eventually(lambda: pd_triggers(peer, namespace) >= 2, 30, what="the page after the window")
    ended = get()["status"]
    assert condition({"status": ended}, "InMaintenance")["status"] == "False"
    assert "MaintenanceEnded" in [e["type"] for e in ended["timeline"]]
    eventually(lambda: pd_triggers(peer, namespace) == 3, 60, what="level 2 after the window")
    mw = kubectl.json("get", "mw/hotfix", "-n", namespace)
    assert mw["spec"]["reason"] == "hotfix"
    eventually(
        lambda: kubectl.json("get", "mw/hotfix", "-n", namespace)["status"].get("active") is False,
        30,
        what="the window's status inactive",
    )
    again = oncall(kubectl, namespace, "maintenance", "stop", "hotfix")
    assert again.returncode == 0 and "already ended" in again.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T10:00:00Z"}, "end must be after start"),
        ({"start": "2026-03-01T12:00:00Z"}, "a one-off window has both start and end"),
        (
            {"recurring": {"timeZone": "UTC"}, "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T12:00:00Z"},
            "either one-off",
        ),
        ({"recurring": {"times": [{"start": "18:00", "end": "06:00"}]}}, "end must be after start (HH:MM)"),
        ({"recurring": {"daysOfMonth": [0]}}, "never 0"),
        ({"recurring": {"times": [{"start": "25:00", "end": "26:00"}]}}, "spec.recurring.times[0].start"),
    ],
)
def test_the_api_server_refuses_a_bad_window_naming_the_field(
    kubectl: Kubectl, namespace: str, crds: None, spec: dict[str, Any], message: str
) -> None:
    body = {"apiVersion": "oncall.dev/v1alpha1", "kind": "MaintenanceWindow", "metadata": {"name": "bad"}, "spec": spec}
    refused = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False)
    assert refused.returncode != 0 and message in refused.stderr, refused.stderr


def heartbeat_config(webhook: str, repeat: str) -> str:
    """The documented route: Watchdog to a receiver of its own, re-sent every ``repeat``; the rest as usual."""
    auth = {"authorization": {"type": "Bearer", "credentials": TOKEN}}
    hook = {"url": webhook, "send_resolved": True, "http_config": auth}
    return json.dumps(
        {
            "route": {
                "receiver": "oncall",
                "group_by": ["alertname", "namespace"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "1h",
                "routes": [
                    {
                        "matchers": ["alertname=Watchdog"],
                        "receiver": "oncall-heartbeat",
                        "group_wait": "0s",
                        "group_interval": "1s",
                        "repeat_interval": repeat,
                    }
                ],
            },
            "receivers": [
                {"name": "oncall", "webhook_configs": [hook]},
                {"name": "oncall-heartbeat", "webhook_configs": [{**hook, "send_resolved": False}]},
            ],
        }
    )


def test_a_silent_alertmanager_pages_and_its_return_resolves(
    kubectl: Kubectl, namespace: str, peer: Peer, op: tuple[OperatorProcess, str], tmp_path: pathlib.Path
) -> None:
    timeout = 20
    for obj in policy(peer):
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
    hb = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Heartbeat",
        "metadata": {"name": "pipeline"},
        "spec": {"timeout": f"{timeout}s", "escalationPolicyRef": {"name": "fast"}},
    }
    am = Alertmanager(tmp_path / "am", op[1], TOKEN)
    (am.workdir / "alertmanager.yml").write_text(heartbeat_config(op[1], "4s"))

    def watchdog() -> None:  # as Prometheus sends it: always firing, re-sent before it would expire
        now = dt.datetime.now(dt.UTC)
        labels = {"alertname": "Watchdog", "severity": "none", "namespace": namespace}
        am.post({"labels": labels, "startsAt": rfc3339(now), "endsAt": rfc3339(now + dt.timedelta(hours=1))})

    def status() -> dict[str, Any]:
        return dict(kubectl.json("get", "hb/pipeline", "-n", namespace).get("status") or {})

    try:
        am.start()
        watchdog()  # before the Heartbeat exists, so its first deadline cannot pass while Alertmanager starts
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(hb))
        first = eventually(lambda: (s := status()).get("state") == "Alive" and s, 30, what="the first beat")
        assert condition({"status": first}, "Ready")["status"] == "True"
        # Alertmanager's repeat_interval keeps it alive: a later beat, still no Incident of any kind
        eventually(lambda: status().get("lastBeatAt", "") > first["lastBeatAt"], 30, what="a repeated beat")
        assert kubectl.json("get", "incidents", "-n", namespace)["items"] == []

        am.stop()
        stopped = time.monotonic()
        last = status()["lastBeatAt"]
        eventually(lambda: pd_triggers(peer, namespace) == 1, timeout + 40, what="the HeartbeatMissed page")
        waited = time.monotonic() - stopped
        print(f"heartbeat: Alertmanager stopped -> page in {waited:.1f}s (timeout {timeout}s, tick {TICK}s)")
        missed = status()
        assert missed["state"] == "Missed" and missed["lastBeatAt"] == last
        [inc] = kubectl.json("get", "incidents", "-n", namespace)["items"]
        assert inc["metadata"]["name"] == missed["incident"]
        assert (inc["spec"]["severity"], inc["spec"]["source"]["type"]) == ("critical", "Heartbeat")
        assert inc["spec"]["source"]["labels"]["alertname"] == "HeartbeatMissed"
        beat_at = dt.datetime.fromisoformat(last.replace("Z", "+00:00"))
        opened = dt.datetime.fromisoformat(inc["status"]["firstSeen"].replace("Z", "+00:00"))
        assert dt.timedelta(seconds=timeout) <= opened - beat_at <= dt.timedelta(seconds=timeout + TICK + 2)

        am.start()  # it comes back (its alerts are not persisted: Prometheus sends the Watchdog again)
        watchdog()
        back = eventually(
            lambda: (
                (s := kubectl.json("get", f"incident/{missed['incident']}", "-n", namespace)["status"])["phase"]
                == "Resolved"
                and s
            ),
            timeout + 30,
            what="the HeartbeatMissed Incident resolved",
        )
        assert back["resolvedBy"] == "heartbeat"
        assert eventually(lambda: status().get("state") == "Alive", 30, what="the heartbeat alive again")
    finally:
        am.stop()
