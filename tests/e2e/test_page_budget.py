"""The per-person page budget end to end: held pages on their Incidents, counted across a restart, one summary.

The operator of ``tests.e2e.test_quiet`` (half-second ticks), PagerDuty played by the local
receiver of ``tests.peers``. Incidents are applied by hand (as ``kubectl`` would), each paging
Ada through the policy ``fast`` with ``noise.maxPagesPerPersonPerHour: 1``.
"""

import json
from typing import Any

import pytest

from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.test_quiet import home, op, pd_triggers, peer, policy
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
