"""A window scoped by workload labels holds the pages and the runbook's ``notify`` of its workload's Incidents only.

Held until the window ends: then the escalation starts again from level 1 and the notify goes out.

The operator of ``tests.e2e.test_quiet`` (half-second ticks), PagerDuty played by the local
receiver of ``tests.peers``. Two Deployments, ``db`` (``app: db``) and ``web``, and an Incident
about each (applied by hand, as the intake would write them) with a runbook whose only action
is a ``notify`` through PagerDuty. The planned work on ``db`` mutes pages for ``app: db``.
"""

import datetime as dt
from typing import Any

import pytest

from tests.conftest import eventually
from tests.e2e.alertmanager_support import rfc3339
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.oom_support import workload
from tests.e2e.test_noise_control import apply, triggers
from tests.e2e.test_quiet import condition, home, op, peer, policy, window
from tests.peers import Peer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
assert home and op and peer  # the fixtures, shared with the quiet tests


def incident(name: str, namespace: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {
            "title": f"{target} slow",
            "severity": "critical",
            "source": {"type": "Alertmanager", "alertName": "Slow"},
            "target": {"kind": "Deployment", "namespace": namespace, "name": target},
            "runbookRef": {"name": "slow"},
            "escalationPolicyRef": {"name": "fast"},
        },
    }


def test_a_workload_selector_window_holds_pages_and_notify_of_its_workload_only(
    kubectl: Kubectl, namespace: str, peer: Peer, op: tuple[OperatorProcess, str]
) -> None:
    tell = {"name": "tell-dba", "type": "notify", "notify": {"channel": "pagerduty", "message": "DBA: pool exhausted"}}
    rb = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": "slow"},
        "spec": {"trigger": {"alertName": "Slow"}, "actions": [tell]},
    }
    now = dt.datetime.now(dt.UTC)
    planned = window(
        "db-work", now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=30), mutes="Pages", reason="db upgrade"
    )
    planned["spec"]["scope"] = {"workloadSelector": {"app": "db"}}
    apply(kubectl, namespace, *policy(peer), rb, planned)
    apply(kubectl, namespace, workload("Deployment", "db", "200Mi", labels={"app": "db"}))
    apply(kubectl, namespace, workload("Deployment", "web", "200Mi", labels={"app": "web"}))
    eventually(
        lambda: kubectl.json("get", "mw/db-work", "-n", namespace).get("status", {}).get("active"), 30, what="active"
    )
    apply(kubectl, namespace, incident("db-slow", namespace, "db"), incident("web-slow", namespace, "web"))

    def sent(name: str) -> list[str]:
        return [e["payload"]["summary"] for e in triggers(peer, namespace) if f"/{namespace}/{name}" in e["dedup_key"]]

    # outside the selector: the page and the runbook's notify go out as usual
    eventually(lambda: len(sent("web-slow")) == 2, 30, what="web's page and notify")

    def held() -> dict[str, Any] | None:
        inc = kubectl.json("get", "incident/db-slow", "-n", namespace)
        status = inc.get("status") or {}
        return inc if condition(inc, "InMaintenance").get("status") == "True" and status.get("actions") else None

    inc = eventually(held, 30, what="db's page held and its notify recorded")
    in_mw = condition(inc, "InMaintenance")
    assert f"pages muted by MaintenanceWindow {namespace}/db-work (db upgrade)" in in_mw["message"]
    [action] = inc["status"]["actions"]
    assert (action["action"], action["state"]) == ("tell-dba", "Refused")
    assert action["reason"].startswith("Maintenance: notify to pagerduty muted by MaintenanceWindow")
    assert not any(c["type"] == "NeedsHuman" and c["status"] == "True" for c in inc["status"]["conditions"])
    assert sent("db-slow") == []

    notes = inc["status"]["escalation"]["notifications"]
    assert [(n["kind"], n["result"]) for n in notes] == [("action-notify", "InMaintenance")]  # held, not claimed
    # the window ends: db's escalation starts from level 1, and the held notify goes out
    kubectl.run(
        "patch",
        "mw/db-work",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        f'{{"spec":{{"end":"{rfc3339(dt.datetime.now(dt.UTC))}"}}}}',
    )
    eventually(lambda: len(sent("db-slow")) == 2, 30, what="db's page and held notify after the window")
    assert any("Level 1 (l1)." in text for text in sent("db-slow"))
    assert any("DBA: pool exhausted" in text for text in sent("db-slow"))

    def told() -> list[str]:
        notes = kubectl.json("get", "incident/db-slow", "-n", namespace)["status"]["escalation"]["notifications"]
        return [n["result"] for n in notes if n["kind"] == "action-notify"]

    eventually(lambda: told() == ["Delivered"], 30, what="the held notify recorded Delivered")
