"""The cap of open Incidents per namespace, through the real intake and the real API server.

The operator runs with ``ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE=2``. A namespace user who
keeps alert groups firing (or creates Incidents by hand) stops at two open Incidents: a new
group gets 429 naming the cap and a Retry-After, a person's new Incident stays unopened with
``Ready=False`` (reason ``TooManyOpenIncidents``); updates of open Incidents still go through,
and another namespace opens its own as before. Resolving one makes room again.
"""

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator import devcluster
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_intake import operator_home
from tests.e2e.test_intake_requests import payload

pytestmark = pytest.mark.e2e
TOKEN = "cap-token-" + uuid.uuid4().hex


@pytest.fixture
def capped(
    control_plane: devcluster.ControlPlane, crds: None, kubectl: Kubectl, tmp_path: Any
) -> Iterator[OperatorProcess]:
    """An operator whose namespaces may each have two open Incidents, in an operator namespace of its own."""
    home, env = operator_home(kubectl, "oncall-cap", TOKEN)
    env["ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE"] = "2"
    process = OperatorProcess(control_plane.kubeconfig, tmp_path / "operator.log", env)
    try:
        yield process.start()
    finally:
        process.stop()
        kubectl.run("delete", "namespace", home, "--wait=false", check=False)


def post(process: OperatorProcess, body: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
    """(status, answer, Retry-After) of one Alertmanager notification."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{process.http_port}/api/v1/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read()), None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("Retry-After")


def phase(kubectl: Kubectl, namespace: str, name: str) -> str:
    status = kubectl.json("get", f"incident/{name}", "-n", namespace).get("status") or {}
    return str(status.get("phase", ""))


def ready(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    status = kubectl.json("get", f"incident/{name}", "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)


def test_a_namespace_at_the_cap_opens_nothing_new_until_one_is_resolved(
    kubectl: Kubectl, namespace: str, capped: OperatorProcess
) -> None:
    opened = {}
    for group in ("CapOne", "CapTwo"):
        code, answer, _ = post(capped, payload(group, namespace, ("web-0", "firing")))
        assert code == 200 and answer["created"], answer
        opened[group] = answer["incident"].split("/")[1]

    code, answer, retry = post(capped, payload("CapThree", namespace, ("web-0", "firing")))
    assert code == 429, answer
    assert f"namespace {namespace} has reached the cap of 2 open Incidents" in answer["error"], answer
    assert retry is not None and int(retry) >= 1
    assert len(kubectl.json("get", "incidents", "-n", namespace)["items"]) == 2  # nothing written for it
    # an open Incident's update is no new Incident: never refused
    code, answer, _ = post(capped, payload("CapOne", namespace, ("web-0", "firing"), ("web-1", "firing")))
    assert code == 200 and not answer["created"], answer

    # a person's Incident over the cap: not opened, and Ready says why
    by_hand = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "by-hand"},
        "spec": {"title": "Checkout is slow", "severity": "warning"},
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(by_hand))
    held = eventually(lambda: ready(kubectl, namespace, "by-hand"), 60, what="by-hand's Ready")
    assert held["status"] == "False" and held["reason"] == "TooManyOpenIncidents", held
    assert "cap of 2 open Incidents" in held["message"] and phase(kubectl, namespace, "by-hand") == ""

    # another tenant is not held by this one's cap
    other = f"{namespace[:50]}-b"
    kubectl.run("create", "namespace", other)
    try:
        code, answer, _ = post(capped, payload("CapOne", other, ("web-0", "firing")))
        assert code == 200 and answer["created"] and answer["incident"].startswith(f"{other}/"), answer
    finally:
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)

    # one resolved makes room for one: the held group when Alertmanager sends it again
    code, answer, _ = post(
        capped, payload("CapOne", namespace, ("web-0", "resolved"), ("web-1", "resolved"), resolved=True)
    )
    assert code == 200 and answer["phase"] == "Resolved", answer

    def third() -> dict[str, Any] | None:
        code, answer, _ = post(capped, payload("CapThree", namespace, ("web-0", "firing")))
        return answer if code == 200 else None

    assert eventually(third, 60, what="the third group accepted once the first is resolved")["created"]
    # and room again: the person's Incident opens at its next change
    code, answer, _ = post(capped, payload("CapTwo", namespace, ("web-0", "resolved"), resolved=True))
    assert code == 200 and answer["phase"] == "Resolved", answer
    kubectl.run("annotate", "incident/by-hand", "-n", namespace, "note=room-now")

    def opened_by_hand() -> bool:
        condition = ready(kubectl, namespace, "by-hand") or {}
        return phase(kubectl, namespace, "by-hand") == "Triggered" and condition.get("reason") != "TooManyOpenIncidents"

    eventually(opened_by_hand, 60, what="by-hand opened below the cap")
