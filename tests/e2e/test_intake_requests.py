"""What an alert costs the API server: the intake's requests per notification, counted on the wire.

At 50 alerts/s the API server and etcd share the cores with the operator, so the number of
requests per alert is the intake's latency. The operator runs as ``oncall-operator run`` against
the real API server through :mod:`tests.e2e.request_log`, which records every request with its
user agent; the intake's own client says ``oncall-operator/intake``. A new group must cost a
create and a status write, a later notification of it a read and a write, the resolution of a
group that never fired nothing at all, and the bearer token one read of its Secret in all.
A 409 in the log (another writer, e.g. the Incident handler, got in between) allows the retry
it forces, and only then. An operator whose indices cannot be trusted (it stands by behind a
live peer of higher priority, so Kopf never filled them) must still find the runbook, from the API.
"""

import datetime as dt
import hashlib
import json
import pathlib
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator import devcluster
from tests.conftest import REPO, eventually
from tests.e2e import test_escalation as esc
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.request_log import RequestLog
from tests.e2e.test_intake import operator_home
from tests.peers import Inbox, Peer

pytestmark = pytest.mark.timeout(180)
INTAKE = "oncall-operator/intake"
TOKEN = "requests-token-" + uuid.uuid4().hex
API = "/apis/oncall.dev/v1alpha1/namespaces"


@pytest.fixture(scope="module")
def wire(control_plane: devcluster.ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RequestLog]:
    log = RequestLog(control_plane.kubeconfig, tmp_path_factory.mktemp("request-log"))
    try:
        yield log
    finally:
        log.close()


class Served:
    """An operator behind the request log, with its intake on a port of its own."""

    def __init__(self, process: OperatorProcess, home: str) -> None:
        self.process, self.home = process, home

    @property
    def port(self) -> int:
        return self.process.http_port  # known once started

    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/alerts",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
            body: dict[str, Any] = json.loads(answer.read())
            return body

    def gauge(self, name: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(f"{name} "):
                    return float(line.split()[1])
        return None


def serve(
    kubectl: Kubectl, wire: RequestLog, log: pathlib.Path, args: tuple[str, ...] = ()
) -> tuple[Served, OperatorProcess]:
    home, env = operator_home(kubectl, "oncall-requests", TOKEN)
    process = OperatorProcess(wire.kubeconfig, log, env, args)
    return Served(process, home), process


def stop(kubectl: Kubectl, served: Served) -> None:
    served.process.stop()
    kubectl.run("delete", "namespace", served.home, "--wait=false", check=False)


def apply_runbook(kubectl: Kubectl, namespace: str, alertname: str, name: str = "requests", **spec: Any) -> None:
    rb = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": name},
        "spec": {"trigger": {"alertName": alertname}, "steps": [{"title": "Look at the dashboard"}], **spec},
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(rb))


def runbook_checked(kubectl: Kubectl, namespace: str, name: str = "requests") -> None:
    """The operator has run its Runbook handler (so Kopf filled its indices) when Ready is written."""
    eventually(
        lambda: (kubectl.json("get", f"runbook/{name}", "-n", namespace).get("status") or {}).get("conditions"),
        30,
        what="the runbook checked by the operator",
    )


def payload(alertname: str, namespace: str, *alerts: tuple[str, str], resolved: bool = False) -> dict[str, Any]:
    """An Alertmanager v4 notification of the group (alertname, namespace) with ``alerts`` as (pod, status)."""
    group = {"alertname": alertname, "namespace": namespace}
    items = []
    for pod, status in alerts:
        labels = {**group, "pod": pod, "severity": "warning"}
        items.append(
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": f"{alertname} on {pod}"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "2026-01-01T01:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16],
            }
        )
    return {
        "version": "4",
        "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}",
        "truncatedAlerts": 0,
        "status": "resolved" if resolved else "firing",
        "receiver": "oncall",
        "groupLabels": group,
        "commonLabels": {**group, "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": items,
    }


def retried_only_after_a_conflict(requests: list[tuple[str, str, int]], expected: list[tuple[str, str]]) -> bool:
    """``requests`` are ``expected``, or they are with a status PUT refused (409), a read and the PUT again."""
    shape = [(m, p) for m, p, _ in requests]
    if shape == expected:
        return True
    put = expected[-1]
    return shape == [*expected[:-1], put, ("GET", put[1].removesuffix("/status")), put] and requests[-3][2] == 409


def test_a_new_group_costs_a_create_and_a_status_write_and_a_later_notification_a_read_and_a_write(
    kubectl: Kubectl, crds: None, namespace: str, wire: RequestLog, tmp_path: pathlib.Path
) -> None:
    alertname = f"Requests{uuid.uuid4().hex[:4]}"
    apply_runbook(kubectl, namespace, alertname)
    served, process = serve(kubectl, wire, tmp_path / "operator.log")
    process.start()
    try:
        runbook_checked(kubectl, namespace)
        assert served.gauge("oncall_operator_active") == 1.0
        start = wire.mark()

        mark = wire.mark()
        first = served.post(payload(alertname, namespace, ("web-1", "firing")))
        name = first["incident"].split("/")[1]
        assert (first["incident"], first["created"]) == (f"{namespace}/{name}", True)
        made = wire.since(mark, INTAKE)
        expected = [("POST", f"{API}/{namespace}/incidents"), ("PUT", f"{API}/{namespace}/incidents/{name}/status")]
        assert retried_only_after_a_conflict(made, expected), made
        print(f"\nnew group: {len(made)} intake requests {made}")
        inc = kubectl.json("get", f"incident/{name}", "-n", namespace)
        assert inc["spec"]["runbookRef"] == {"name": "requests"}
        assert [c["title"] for c in inc["status"]["checklist"]] == ["Look at the dashboard"]
        # Ready is in the intake's own status write, so the Incident handler has nothing to add
        [ready] = [c for c in inc["status"]["conditions"] if c["type"] == "Ready"]
        assert (ready["status"], inc["status"]["observedGeneration"]) == ("True", inc["metadata"]["generation"])
        # the API server names the field manager by the user agent's part before the slash
        meta = kubectl.json("get", f"incident/{name}", "-n", namespace, "--show-managed-fields")["metadata"]
        assert {m["manager"] for m in meta["managedFields"]} <= {"oncall-operator", "kopf"}, meta["managedFields"]

        # the Incident handler's own writes are done once it has written Ready
        eventually(
            lambda: any(
                c["type"] == "Ready"
                for c in kubectl.json("get", f"incident/{name}", "-n", namespace)["status"].get("conditions", [])
            ),
            30,
            what="the Incident checked by the operator",
        )
        status_path = f"{API}/{namespace}/incidents/{name}/status"
        patched = [r for r in wire.since(start, "oncall-operator") if r[:2] == ("PATCH", status_path)]
        assert patched == [], patched  # no Ready PATCH behind the intake's write
        mark = wire.mark()
        later = served.post(payload(alertname, namespace, ("web-1", "firing"), ("web-2", "firing")))
        assert (later["incident"], later["created"], later["changed"]) == (f"{namespace}/{name}", False, True)
        made = wire.since(mark, INTAKE)
        expected = [("GET", f"{API}/{namespace}/incidents/{name}"), expected[1]]
        assert retried_only_after_a_conflict(made, expected), made
        print(f"later notification: {len(made)} intake requests {made}")
        assert kubectl.json("get", f"incident/{name}", "-n", namespace)["status"]["occurrences"] == 2

        # the resolution of a group that never opened an Incident: accepted, and not a single request
        mark = wire.mark()
        never = served.post(payload(f"Never{alertname}", namespace, ("web-1", "resolved"), resolved=True))
        assert never["incident"] == ""
        assert wire.since(mark, INTAKE) == []

        secret = f"/api/v1/namespaces/{served.home}/secrets/intake"
        token_reads = [r for r in wire.since(start, "oncall-operator") if r[1] == secret]
        assert len(token_reads) == 1, token_reads  # read at the first request, then kept
    finally:
        stop(kubectl, served)


def test_a_new_alert_incident_that_pages_costs_three_writes_in_all(
    kubectl: Kubectl,
    crds: None,
    namespace: str,
    wire: RequestLog,
    peer: Peer,
    inbox: tuple[Inbox, int],
    tmp_path: pathlib.Path,
) -> None:
    """Issue 18: the create, the opening write that claims the first page, the outcome; no Event for the page.

    The claim used to be a write of its own (4 writes and an Event per alert Incident). The intake now
    claims level 1 in its opening write and hands the send to the escalation, which sends and records.
    """
    alertname = f"Pages{uuid.uuid4().hex[:4]}"
    esc.setup(kubectl, namespace, peer, inbox[1], levels=("10m", "20m"), ack_timeout="30m")
    apply_runbook(kubectl, namespace, alertname, "pages", escalationPolicyRef={"name": "fast"})
    served, process = serve(kubectl, wire, tmp_path / "operator.log")
    process.start()
    try:
        runbook_checked(kubectl, namespace, "pages")
        mark = wire.mark()
        name = served.post(payload(alertname, namespace, ("web-1", "firing")))["incident"].split("/")[1]
        delivered = ("page/L1/loop0", "pagerduty", "Delivered"), ("page/L1/loop0", "email", "Delivered")
        eventually(lambda: set(delivered) <= set(esc.steps(kubectl, namespace, name)), 60, what="level 1 recorded")
        eventually(lambda: inbox[0].messages, 30, what="the email")
        assert process.text().count(f"Incident {namespace}/{name}: claimed") == 1  # sent once, by the escalation
        writes = [
            (r.method, r.path, r.status)
            for r in wire.all_since(mark)
            if r.method in ("POST", "PUT", "PATCH", "DELETE")
            and (f"/incidents/{name}" in r.path or r.path == f"{API}/{namespace}/incidents")
        ]
        print(f"\nnew alert Incident that pages: {len(writes)} writes {writes}")
        refused = [w for w in writes if w[2] == 409]  # a conflict forces a read and the write again: allowed
        assert len(writes) - 2 * len(refused) == 3, writes
        events = kubectl.json("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
        assert events["items"] == [], [(e["reason"], e["message"]) for e in events["items"]]  # the page is no Event
    finally:
        stop(kubectl, served)


def test_a_standby_whose_indices_are_not_filled_reads_the_runbook_from_the_api(
    kubectl: Kubectl, crds: None, namespace: str, wire: RequestLog, tmp_path: pathlib.Path
) -> None:
    kubectl.run("apply", "--server-side", "-f", str(REPO / "deploy/helm/oncall-operator/crds"))
    kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev")
    peering = f"requests-{namespace[-6:]}"
    leader = {  # a live peer of a higher priority: Kopf pauses ours from the start, its indices stay empty
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": peering},
        "status": {
            "leader@elsewhere": {
                "priority": 1000,
                "lifetime": 3600,
                "lastseen": dt.datetime.now(dt.UTC).isoformat(),
            }
        },
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(leader))
    alertname = f"Standby{uuid.uuid4().hex[:4]}"
    apply_runbook(kubectl, namespace, alertname)
    served, process = serve(kubectl, wire, tmp_path / "operator.log", ("--peering", peering, "--priority", "1"))
    process.start()
    try:
        eventually(lambda: (served.gauge("oncall_operator_peers") or 0) >= 1, 30, what="the standby seeing the leader")
        assert served.gauge("oncall_operator_active") == 0.0
        mark = wire.mark()
        first = served.post(payload(alertname, namespace, ("db-1", "firing")))
        assert first["created"] is True
        name = first["incident"].split("/")[1]
        inc = kubectl.json("get", f"incident/{name}", "-n", namespace)
        assert inc["spec"]["runbookRef"] == {"name": "requests"}
        made = [(m, p) for m, p, _ in wire.since(mark, INTAKE)]
        assert made == [  # nothing taken from the indices: both homes read, both lists of runbooks
            ("GET", f"{API}/{namespace}/incidents/{name}"),
            ("GET", f"{API}/{served.home}/incidents/{name}"),
            ("GET", f"{API}/{namespace}/runbooks"),
            ("GET", f"{API}/{served.home}/runbooks"),
            ("POST", f"{API}/{namespace}/incidents"),
            ("PUT", f"{API}/{namespace}/incidents/{name}/status"),
        ], made
    finally:
        stop(kubectl, served)
        kubectl.run("delete", "clusterkopfpeering", peering, "--wait=false", check=False)
