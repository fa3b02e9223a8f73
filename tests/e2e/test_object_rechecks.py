"""Schedules, Policies and Runbooks carry no Kopf state: deleting them needs no operator.

The rechecks that heal a reference applied later run in the operator's own loop
(``executor/rechecks.py``), not in Kopf timers, which would put a finalizer on every object.
"""

import pathlib
from collections.abc import Iterator

import pytest

from oncall_operator import devcluster
from tests.conftest import REPO, eventually
from tests.e2e.conftest import Kubectl, OperatorProcess

OBJECTS = ("oncallschedule/valeo-oncall", "escalationpolicy/valeo-escalation", "runbook/pod-oom-killed")


@pytest.fixture
def operator_process(
    control_plane: devcluster.ControlPlane, crds: None, tmp_path: pathlib.Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(control_plane.kubeconfig, tmp_path / "operator.log")
    try:
        yield process
    finally:
        process.stop()


def _ready(kubectl: Kubectl, resource: str, namespace: str) -> str:
    obj = kubectl.json("get", resource, "-n", namespace)
    found = [c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"]
    return str(found[0]["status"]) if found else ""


def test_objects_heal_by_recheck_and_delete_without_an_operator(
    kubectl: Kubectl, namespace: str, operator_process: OperatorProcess
) -> None:
    for path in ("schedule.yaml", "escalation-policy.yaml", "runbooks.yaml"):
        kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples" / path))
    operator_process.start()
    policy = "escalationpolicy/valeo-escalation"
    eventually(lambda: _ready(kubectl, policy, namespace) == "False", 30, what="policy Ready=False (no Secrets)")
    # the Secrets appear later: no event of the policy says so, only the recheck loop sees it
    kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples/notifier-secrets.yaml"))
    eventually(lambda: _ready(kubectl, policy, namespace) == "True", 30, what="policy healed by the recheck loop")
    for resource in OBJECTS:
        eventually(lambda r=resource: _ready(kubectl, r, namespace) == "True", 30, what=f"{resource} Ready")  # type: ignore[misc]
        meta = kubectl.json("get", resource, "-n", namespace)["metadata"]
        assert not meta.get("finalizers"), (resource, meta.get("finalizers"))
    operator_process.stop()
    for resource in OBJECTS:
        kubectl.run("delete", resource, "-n", namespace, "--wait=true", "--timeout=20s")
        assert kubectl.run("get", resource, "-n", namespace, check=False).returncode != 0
