"""The page budget's list of every Incident, against the real API server.

A restarted operator must count the pages of the last hour before its first decision under a
budget: Kopf's listing hands Incidents to the handler in no set order, and a look at one held
page before the handler has seen the page that used the budget sent a summary too early (a CI
run of ``test_noise_control.py`` caught it). :func:`page_budget.ready` lists every Incident of the
operator's scope, page by page (``continue`` tokens: pages of one here), into the ledger. The
race between the list and the handler is unit-tested (``tests/unit/test_incident_homes.py``).
"""

import datetime as dt
import json
from typing import Any

import kubernetes
import pytest

from oncall_operator.adapters import apiserver, kube
from oncall_operator.executor import page_budget
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.e2e


def note(result: str, at: dt.datetime) -> dict[str, Any]:
    key = f"page/L1/loop0@{at.isoformat()}"
    return {"key": key, "kind": "page", "level": 1, "user": "Ada", "channel": "hook", "result": result, "at": at}


def make(kubectl: Kubectl, namespace: str, name: str, policy_ref: dict[str, str], *notes: dict[str, Any]) -> None:
    obj = {
        "apiVersion": "oncall.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"title": f"{name} down", "severity": "critical", "escalationPolicyRef": policy_ref},
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
    status = {"status": {"phase": "Triggered", "escalation": {"notifications": list(notes)}}}
    patch = json.dumps(status, default=lambda t: t.isoformat())
    kubectl.run("patch", "incident", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch)


async def test_the_budget_counts_every_incident_listed_page_by_page_and_nothing_of_another_tenant(
    kubectl: Kubectl, crds: None, namespace: str, api: kubernetes.client.ApiClient
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    other = f"{namespace[:50]}-b"
    kubectl.run("create", "namespace", other)
    try:
        make(kubectl, namespace, "paged", {"name": "pager"}, note("Delivered", now))
        make(kubectl, namespace, "held", {"name": "pager"}, note("Held", now))
        make(kubectl, namespace, "old", {"name": "pager"}, note("Delivered", now - dt.timedelta(hours=2)))
        make(kubectl, namespace, "quiet", {"name": "pager"})
        # a hostile tenant's Incidents naming this namespace's policy: they never spend its budget
        make(kubectl, other, "spend", {"name": "pager", "namespace": namespace}, note("Delivered", now))
        ledger = page_budget.Ledger()
        client = apiserver.Api(kube.Kube(api))
        try:
            await page_budget.ready(ledger, client, [namespace, other], "oncall-system", page=1)
        finally:
            await client.close()
        assert ledger.current() and ledger.listing is not None and ledger.listing.done()
        mine = ("policy", namespace, "pager", namespace)
        assert ledger.keys() == [mine]
        found = sorted((e.incident, e.state, e.person) for e in ledger.others({mine}))
        assert found == [(f"{namespace}/held", "held", "Ada"), (f"{namespace}/paged", "sent", "Ada")]
    finally:
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)
