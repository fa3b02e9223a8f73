"""No page is lost, nothing hangs: the fault campaign at small counts (``tests/faults.py``).

- SIGKILL of the operator at random points of the escalation, a third of the rounds the moment
  the first claim shows Pending: every claimed page is delivered at least once, and exactly once
  per delivery id (the receivers dedup by the webhook's ``id``);
- a receiver answering 500 for longer than one send's retry budget, then recovering: the page
  arrives (it is sent again after a backoff, not dropped);
- a black-holed channel (accepts TCP, never answers) on other Incidents: a healthy Incident's
  level-2 page still comes on time.

``hack/fault_campaign.py`` runs the same at full size and prints the figures. This module
starts and kills its own operators, so it does not use the shared ``operator`` fixture.
"""

import datetime as dt
import json
import os
import random
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from tests import faults
from tests.conftest import eventually
from tests.e2e.conftest import Kubectl, OperatorProcess

ROUNDS = int(os.environ.get("ONCALL_FAULT_ROUNDS", "3"))


@pytest.fixture
def receiver() -> Iterator[faults.Receiver]:
    with faults.Receiver(hold=2.0, fail_for=25.0) as r:
        yield r


def applier(kubectl: Kubectl) -> Any:
    def apply(namespace: str, obj: dict[str, Any]) -> None:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))

    return apply


def test_sigkill_at_random_points_loses_no_page_and_resends_under_the_same_id(
    kubectl: Kubectl,
    api: kubernetes.client.ApiClient,
    namespace: str,
    operator_process: OperatorProcess,
    receiver: faults.Receiver,
) -> None:
    operator_process.start()
    op = faults.Operator(operator_process.start, operator_process.kill)
    custom = kubernetes.client.CustomObjectsApi(api)
    rounds = faults.kill_rounds(custom, applier(kubectl), namespace, receiver, op, ROUNDS, random.Random(12))
    print(json.dumps([r.__dict__ for r in rounds]))
    for r in rounds:
        assert r.distinct == 2, f"{r.incident}: both levels, each under one id: {r}"
        assert r.raw >= r.distinct


def test_a_receiver_down_longer_than_a_send_gets_the_page_when_it_recovers(
    kubectl: Kubectl, namespace: str, operator_process: OperatorProcess, receiver: faults.Receiver
) -> None:
    operator_process.start()
    apply = applier(kubectl)
    for obj in faults.policy("fl", {"a": receiver.url("flaky", namespace)}, [("0", "a")]):
        apply(namespace, obj)
    apply(namespace, faults.incident("outage", "fl"))
    hit = eventually(lambda: receiver.pages("outage"), 150, interval=0.5, what="the page after the outage")
    assert receiver.refused >= 3  # one whole send's attempts were refused before it
    notes = eventually(
        lambda: [
            n
            for n in kubectl.json("get", "incident/outage", "-n", namespace)["status"]["escalation"]["notifications"]
            if n["result"] == "Delivered"
        ],
        30,
        what="Delivered on the Incident",
    )
    assert notes[0]["attempts"] >= 2 and len({h.id for h in hit}) == 1


def test_a_black_holed_channel_does_not_delay_other_incidents_level_two(
    kubectl: Kubectl, namespace: str, operator_process: OperatorProcess, receiver: faults.Receiver
) -> None:
    apply = applier(kubectl)
    with faults.BlackHole() as hole:
        for obj in faults.policy("bh", {"a": f"http://127.0.0.1:{hole.port}/hook"}, [("0", "a"), ("1s", "a")]):
            apply(namespace, obj)
        for obj in faults.policy("ok", {"a": receiver.url("ok", "a")}, [("0", "a"), ("8s", "a")]):
            apply(namespace, obj)
        operator_process.start()
        for i in range(3):
            apply(namespace, faults.incident(f"stuck-{i}", "bh"))
        apply(namespace, faults.incident("healthy", "ok"))
        l2 = eventually(
            lambda: [h for h in receiver.pages("healthy") if h.level == 2], 60, interval=0.2, what="healthy L2"
        )[0]
        started = kubectl.json("get", "incident/healthy", "-n", namespace)["status"]["escalation"]["startedAt"]
        due = dt.datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() + 8
        late = l2.at - due
        print(f"healthy L2 {late:.2f}s after due, with 3 Incidents' sends black-holed")
        assert late < 5, f"level 2 came {late:.1f}s late"
        stuck = kubectl.json("get", "incident/stuck-0", "-n", namespace)["status"]["escalation"]["notifications"]
        assert stuck and all(n["result"] == "Pending" for n in stuck)  # still being tried, not lost
