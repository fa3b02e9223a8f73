"""The running operator checks what the schema cannot and reports it in the Ready condition."""

import datetime as dt
import pathlib
from typing import Any

import pytest

from tests.conftest import REPO, eventually
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.usefixtures("operator")


def ready(kubectl: Kubectl, resource: str, namespace: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", resource, "-n", namespace)
    found = [c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"]
    if found and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]:
        return found[0]  # type: ignore[no-any-return]
    return None


def wait_ready(
    kubectl: Kubectl, resource: str, namespace: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        cond = ready(kubectl, resource, namespace)
        return cond if cond and cond["status"] == status and (reason is None or cond["reason"] == reason) else None

    return eventually(probe, 30, what=f"{resource} Ready={status} {reason or ''}")


def test_examples_become_ready(kubectl: Kubectl, namespace: str) -> None:
    for path in sorted(pathlib.Path(REPO / "examples").glob("*.yaml")):
        kubectl.run("apply", "-n", namespace, "-f", str(path))
    for resource in (
        "oncallschedule/valeo-oncall",
        "escalationpolicy/valeo-escalation",
        "runbook/api-error-rate",
        "runbook/pod-oom-killed",
        "runbook/connection-pool-exhaustion",
        "runbook/compliance-violation",
    ):
        cond = wait_ready(kubectl, resource, namespace, "True", "Valid")
        assert cond["observedGeneration"] >= 1
    table = kubectl.run("get", "escpol", "-n", namespace).stdout
    assert "True" in table.splitlines()[1]


def test_missing_schedule_is_reported_and_heals_when_it_appears(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/notifier-secrets.yaml"))
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/escalation-policy.yaml"))
    cond = wait_ready(kubectl, "escalationpolicy/valeo-escalation", namespace, "False", "ScheduleNotFound")
    assert "spec.levels[0].targets[0].schedule.name" in cond["message"] and "valeo-oncall" in cond["message"]
    events = kubectl.run("get", "events", "-n", namespace, "--field-selector", "reason=ScheduleNotFound").stdout
    assert "valeo-oncall" in events
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    wait_ready(kubectl, "escalationpolicy/valeo-escalation", namespace, "True", "Valid")


def test_unknown_timezone_is_reported(kubectl: Kubectl, namespace: str) -> None:
    manifest = (REPO / "examples/schedule.yaml").read_text().replace("Europe/Berlin", "Mars/Olympus_Mons")
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest)
    cond = wait_ready(kubectl, "oncallschedule/valeo-oncall", namespace, "False", "UnknownTimeZone")
    assert cond["message"].startswith("spec.timeZone: 'Mars/Olympus_Mons' is not an IANA time zone")
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    cond = wait_ready(kubectl, "oncallschedule/valeo-oncall", namespace, "True", "Valid")
    assert cond["observedGeneration"] == 2


def test_missing_secret_is_reported(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/escalation-policy.yaml"))
    cond = wait_ready(kubectl, "escalationpolicy/valeo-escalation", namespace, "False", "SecretNotFound")
    assert "spec.channels[0].secretRef: Secret 'oncall-pagerduty' not found" in cond["message"]


def test_new_incident_is_opened_on_the_board(kubectl: Kubectl, namespace: str) -> None:
    manifest = """
apiVersion: oncall.dev/v1alpha1
kind: Incident
metadata: {name: web-oom}
spec:
  title: web OOMKilled
  severity: warning
  source: {type: OOMKill}
  target: {kind: Deployment, namespace: shop, name: web, container: app}
  runbookRef: {name: pod-oom-killed}
"""
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest)

    def opened() -> dict[str, Any] | None:
        status = kubectl.json("get", "incident/web-oom", "-n", namespace).get("status") or {}
        return status if status.get("phase") else None

    status = eventually(opened, 30, what="the Incident's first status")
    assert status["phase"] == "Triggered" and status["target"] == "Deployment/shop/web[app]"
    assert status["timeline"][0]["type"] == "Triggered" and "web OOMKilled" in status["timeline"][0]["message"]
    cond = wait_ready(kubectl, "incident/web-oom", namespace, "False", "CrossNamespace")  # its target is in shop
    assert "spec.target.namespace: 'shop' is not the Incident's namespace" in cond["message"]
    assert "spec.runbookRef.name: Runbook 'pod-oom-killed' not found" in cond["message"]
    row = kubectl.run("get", "inc", "-n", namespace).stdout.splitlines()[1].split()
    assert row[:5] == ["web-oom", "warning", "Triggered", "0", "Deployment/shop/web[app]"]


def test_schedule_status_shows_who_is_on_call_next_handoff_and_coverage(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/schedule.yaml"))
    wait_ready(kubectl, "oncallschedule/valeo-oncall", namespace, "True", "Valid")
    status = kubectl.json("get", "ocs/valeo-oncall", "-n", namespace)["status"]
    assert status["onCall"].startswith("primary=") and "secondary=CTO / Engineering Manager" in status["onCall"]
    assert status["nextHandoff"] and [r["role"] for r in status["roles"]][:2] == ["primary", "secondary"]
    [covered] = [c for c in status["conditions"] if c["type"] == "Covered"]
    assert (covered["status"], covered["reason"]) == ("True", "Covered")
    header, row = kubectl.run("get", "ocs", "-n", namespace).stdout.splitlines()
    assert header.split()[:4] == ["NAME", "TIMEZONE", "ON-CALL", "NEXT-HANDOFF"]
    assert row.split()[:2] == ["valeo-oncall", "Europe/Berlin"] and status["nextHandoff"] in row


def test_a_hole_in_the_rotation_is_reported_as_a_coverage_gap(kubectl: Kubectl, namespace: str) -> None:
    later = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    manifest = (REPO / "examples/schedule.yaml").read_text().replace('start: "2026-01-05"', f'start: "{later}"', 1)
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest)
    wait_ready(kubectl, "oncallschedule/valeo-oncall", namespace, "True", "Valid")

    def gap() -> dict[str, Any] | None:
        status = kubectl.json("get", "ocs/valeo-oncall", "-n", namespace).get("status") or {}
        found = [c for c in status.get("conditions", []) if c["type"] == "Covered" and c["status"] == "False"]
        return found[0] if found else None

    covered = eventually(gap, 30, what="Covered=False")
    assert covered["reason"] == "CoverageGap" and covered["message"].startswith("primary has nobody on call from ")


def test_resolving_a_critical_incident_opens_its_review(kubectl: Kubectl, namespace: str) -> None:
    from tests.e2e.test_kubectl_plugin import oncall

    manifest = """
apiVersion: oncall.dev/v1alpha1
kind: Incident
metadata: {name: db-down}
spec: {title: Database down, severity: critical}
"""
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest)
    eventually(lambda: (kubectl.json("get", "incident/db-down", "-n", namespace).get("status") or {}).get("phase"), 30)
    early = oncall(kubectl, namespace, "report", "db-down")
    assert early.returncode == 1 and "has no review yet" in early.stderr
    assert oncall(kubectl, namespace, "resolve", "db-down", "--note", "failed over to the replica").returncode == 0

    def reviewed() -> dict[str, Any] | None:
        return kubectl.json("get", "incident/db-down", "-n", namespace)["status"].get("review")  # type: ignore[no-any-return]

    found = eventually(reviewed, 30, what="the review")
    assert found["reportConfigMap"] == "db-down-review" and found["dueAt"]
    report = oncall(kubectl, namespace, "report", "db-down")
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("# Incident report: Database down")
    assert "| Resolved | admin | Resolved by admin: failed over to the replica |" in report.stdout
    owner = kubectl.json("get", "configmap/db-down-review", "-n", namespace)["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("Incident", "db-down")
    timeline = kubectl.json("get", "incident/db-down", "-n", namespace)["status"]["timeline"]
    assert [e["type"] for e in timeline].count("ReviewOpened") == 1
