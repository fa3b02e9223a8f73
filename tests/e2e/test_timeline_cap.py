"""``kubectl oncall ack`` and ``resolve`` on an Incident at the operator's bounds, under the real admission policy.

The admission policy lets a person only append to the timeline (the old timeline must be a
prefix of the new one), and the operator keeps an Incident bounded by compacting it (900
entries, 900 KiB: ``domain/bounds.py``). The two meet when a person writes to an Incident at
those bounds: a person's write that compacted, or fitted the status under the byte budget,
would rewrite earlier entries and be refused. Same control plane and world as
``test_tenancy.py`` (the policies bound as the chart binds them, the operator and alice as
ServiceAccounts); the Incident is brought to the bounds by a status write of the operator's
identity, as the operator's own writes leave it.
"""

import json
import subprocess
from typing import Any

import kubernetes
import pytest

from oncall_operator.api import incident as api
from oncall_operator.domain import bounds
from tests.conftest import REPO, eventually
from tests.e2e import test_tenancy as tenancy
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.e2e
plane, world = tenancy.plane, tenancy.world  # the same module fixtures: a control plane with the policies bound
TENANT = tenancy.TENANT


def at_the_bounds(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` with its timeline at the operator's compaction limit and the whole 16 bytes under the byte budget."""
    st = api.IncidentStatus.model_validate(status)
    first = st.timeline[0]
    room = bounds.TIMELINE_LIMIT - len(st.timeline)
    filler = [api.TimelineEntry(at=first.at, type="StatusUpdate", message="") for _ in range(room)]
    base = bounds.size(st.model_copy(update={"timeline": [*st.timeline, *filler]}))
    per_entry = (bounds.STATUS_BUDGET - 512 - base) // room
    st.timeline += [e.model_copy(update={"message": f"{i:05d} " + "x" * (per_entry - 6)}) for i, e in enumerate(filler)]
    last = st.timeline[-1]  # to the byte: the operator's small writes creep up to the budget before it fits
    last.message += "y" * (bounds.STATUS_BUDGET - 16 - bounds.size(st))
    assert bounds.size(st) == bounds.STATUS_BUDGET - 16
    assert bounds.fit(st) is st  # the operator itself would write it so
    return st.wire()


def oncall(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv/bin/kubectl-oncall"), "-n", TENANT, *args],
        capture_output=True,
        text=True,
        env={"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=120,
    )


def test_a_persons_ack_and_resolve_at_the_timeline_cap_pass_the_admission_policy(
    plane: tenancy.Plane, world: dict[str, Any]
) -> None:
    alice: Kubectl = world["alice"]
    admin: Kubectl = world["admin"]
    tenancy.apply(alice, tenancy.incident("full"))

    def read() -> dict[str, Any]:
        return dict(json.loads(admin.run("get", "incident", "full", "-n", TENANT, "-o", "json").stdout))

    eventually(lambda: (read().get("status") or {}).get("phase"), 30, what="the Incident opened by the operator")
    as_operator = kubernetes.config.new_client_from_config(
        config_file=str(plane.kubeconfig_for("oncall-system", "operator"))
    )  # type: ignore[no-untyped-call]
    custom = kubernetes.client.CustomObjectsApi(as_operator)
    raw = read()
    raw["status"] = at_the_bounds(raw["status"])
    custom.replace_namespaced_custom_object_status("oncall.dev", "v1alpha1", TENANT, "incidents", "full", raw)
    before = read()["status"]["timeline"]
    assert len(before) == bounds.TIMELINE_LIMIT

    acked = oncall(str(alice.kubeconfig), "ack", "full")
    assert acked.returncode == 0, acked.stderr
    after = read()["status"]
    assert after["acknowledgedBy"] == tenancy.ALICE
    assert after["timeline"][: len(before)] == before or len(after["timeline"]) < len(
        before
    )  # the operator may compact since
    assert any(e.get("actor") == tenancy.ALICE for e in after["timeline"])

    resolved = oncall(str(alice.kubeconfig), "resolve", "full")
    assert resolved.returncode == 0, resolved.stderr
    assert read()["status"]["resolvedBy"] == tenancy.ALICE
    # the operator's next writes bring it back under its bounds
    eventually(
        lambda: bounds.size(api.IncidentStatus.model_validate(read()["status"])) <= bounds.STATUS_BUDGET,
        60,
        what="the operator fitting the Incident again",
    )
