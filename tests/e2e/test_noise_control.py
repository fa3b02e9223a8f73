"""Noise control end to end: the per-person page budget, and a policy's own flap thresholds.

The operator of ``tests.e2e.test_quiet`` (half-second ticks), PagerDuty played by the local
receiver of ``tests.peers``. The budget's Incidents are applied by hand (as ``kubectl`` would),
each paging Ada through the policy ``fast`` with ``noise.maxPagesPerPersonPerHour: 1``; the
flapping group arrives as Alertmanager webhooks at the operator's intake.
"""

import datetime as dt
import json
import urllib.request
from typing import Any

import pytest

from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_quiet import TOKEN, home, op, pd_triggers, peer, policy
from tests.peers import Peer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
assert home and op and peer  # the fixtures, shared with the quiet tests


def capped(peer: Peer, cap: int) -> list[dict[str, Any]]:
    objs = policy(peer)
    objs[1]["spec"]["noise"] = {"maxPagesPerPersonPerHour": cap}
    return objs


def apply(kubectl: Kubectl, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))


def incident(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"title": f"{name} down", "severity": "critical", "escalationPolicyRef": {"name": "fast"}},
    }


def notes(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    inc = kubectl.json("get", f"incident/{name}", "-n", namespace)
    return list(((inc.get("status") or {}).get("escalation") or {}).get("notifications") or [])


def held(kubectl: Kubectl, namespace: str, name: str) -> bool:
    return any(n["result"] == "Held" for n in notes(kubectl, namespace, name))


def triggers(peer: Peer, namespace: str) -> list[dict[str, Any]]:
    events = peer.accepted_at("/v2/enqueue")
    return [e for e in events if e["event_action"] == "trigger" and f"oncall.dev/{namespace}/" in e["dedup_key"]]


def test_a_person_over_the_budget_gets_one_summary_and_nothing_is_dropped(
    kubectl: Kubectl, namespace: str, peer: Peer, op: tuple[OperatorProcess, str]
) -> None:
    other = f"{namespace[:50]}-b"  # another tenant, with its own policy `fast` paging its own "Ada"
    kubectl.run("create", "namespace", other)
    try:
        apply(kubectl, namespace, *capped(peer, 1))
        apply(kubectl, other, *capped(peer, 1))
        apply(kubectl, namespace, incident("a-0"))
        eventually(lambda: pd_triggers(peer, namespace) == 1, 30, what="Ada's first page")
        apply(kubectl, namespace, incident("a-1"), incident("a-2"))
        for name in ("a-1", "a-2"):
            eventually(lambda name=name: held(kubectl, namespace, name), 30, what=f"{name}'s page held")
        assert pd_triggers(peer, namespace) == 1
        timeline = kubectl.json("get", "incident/a-1", "-n", namespace)["status"]["timeline"]
        [said] = [e["message"] for e in timeline if e["type"] == "PageHeld"]
        assert "noise.maxPagesPerPersonPerHour 1" in said and "-> Ada held" in said

        # the other tenant's Incidents spend their own budget, not this one's
        apply(kubectl, other, incident("b-0"))
        eventually(lambda: pd_triggers(peer, other) == 1, 30, what="the other tenant's Ada paged")

        # a restarted operator counts the hour's pages from the Incidents: the next page is held too
        process = op[0]
        process.stop()
        process.start()
        apply(kubectl, namespace, incident("a-3"))
        eventually(lambda: held(kubectl, namespace, "a-3"), 60, what="a-3's page held after the restart")
        assert pd_triggers(peer, namespace) == 1
        # a summary names the pages held before its own second (one held in that second waits for the
        # next summary: the budget cannot order two writes within a second); the room comes after it
        [held_at] = [
            dt.datetime.fromisoformat(n["at"]) for n in notes(kubectl, namespace, "a-3") if n["result"] == "Held"
        ]
        eventually(lambda: dt.datetime.now(dt.UTC) >= held_at + dt.timedelta(seconds=1), 5, what="a-3's second over")

        # room again (the cap raised; else an hour later): one summary counting the three held pages
        kubectl.run(
            "patch",
            "escpol/fast",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"spec":{"noise":{"maxPagesPerPersonPerHour":5}}}',
        )
        eventually(lambda: pd_triggers(peer, namespace) == 2, 30, what="the summary")
        summary = triggers(peer, namespace)[-1]["payload"]["summary"]
        assert "3 pages held back since" in summary and "(page budget per hour)" in summary
        for name in ("a-1", "a-2", "a-3"):
            assert f"{namespace}/{name}: Level 1 (l1)." in summary

        def summarised() -> bool:
            results = [n["result"] for name in ("a-1", "a-2", "a-3") for n in notes(kubectl, namespace, name)]
            return results.count("Summarized") == 3 and "Held" not in results

        eventually(summarised, 30, what="every held page marked as counted in the summary")
        assert pd_triggers(peer, namespace) == 2  # the held pages are never sent one by one
        assert f"{other}/" not in summary
    finally:
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)


def webhook(url: str, namespace: str, status: str, starts: str) -> None:
    """One Alertmanager v4 delivery of the group ``Flappy`` with one alert, firing or resolved."""
    labels = {"alertname": "Flappy", "namespace": namespace, "severity": "critical"}
    alert = {"status": status, "labels": labels, "annotations": {}, "startsAt": starts, "fingerprint": starts[-12:]}
    alert["endsAt"] = dt.datetime.now(dt.UTC).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z"
    payload = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Flappy", namespace="{namespace}"}}',
        "status": status,
        "receiver": "oncall",
        "groupLabels": {"alertname": "Flappy"},
        "commonLabels": labels,
        "alerts": [alert],
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status < 300, answer.read()


def test_a_policy_flapping_after_one_resolution_keeps_the_incident_open(
    kubectl: Kubectl, namespace: str, peer: Peer, op: tuple[OperatorProcess, str]
) -> None:
    objs = policy(peer)
    objs[1]["spec"]["noise"] = {"flapResolutions": 1, "flapWindow": "10m"}  # today's default needs 2 in 30m
    rb = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Runbook",
        "metadata": {"name": "flappy"},
        "spec": {"trigger": {"alertName": "Flappy"}, "escalationPolicyRef": {"name": "fast"}},
    }
    apply(kubectl, namespace, *objs, rb)
    url = op[1]

    def status() -> dict[str, Any]:
        items = kubectl.json("get", "incidents", "-n", namespace)["items"]
        return dict(items[0].get("status") or {}) if items else {}

    first = dt.datetime.now(dt.UTC).isoformat()
    webhook(url, namespace, "firing", first)
    eventually(lambda: pd_triggers(peer, namespace) == 1, 30, what="the first page")
    webhook(url, namespace, "resolved", first)
    eventually(lambda: status().get("phase") == "Resolved", 30, what="resolved")
    webhook(url, namespace, "firing", dt.datetime.now(dt.UTC).isoformat())
    flapped = eventually(lambda: (s := status()).get("flaps") == 1 and s, 30, what="the flap counted")
    assert flapped["phase"] == "Triggered"
    kinds = [e["type"] for e in flapped["timeline"]]
    assert "Reopened" not in kinds and "Flapping" in kinds
    [said] = [e["message"] for e in flapped["timeline"] if e["type"] == "Flapping"]
    assert "after 1+ resolutions in 10m: flap #1" in said
    assert pd_triggers(peer, namespace) == 1  # no new page for the flap
