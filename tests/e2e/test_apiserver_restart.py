"""kube-apiserver restarted in the middle of escalations: no page lost, none doubled.

The module runs its own control plane (a restart would break every other module's watches). Three
Incidents page level 1; then the API server is stopped, kept down over level 2's time, and started
again on the same port (``ControlPlane.restart``), as at a control-plane upgrade. The operator's
watches break and its requests fail meanwhile; it must neither die nor lose a level: every level 2
arrives once it is back, each step under one delivery id. The full-size run is
``bench/fault_campaign.py --parts restart`` (``bench/results/fault_campaign.md``).
"""

import contextlib
import dataclasses
import json
import pathlib
from typing import Any

import kubernetes
import pytest

from oncall_operator import devcluster
from tests import faults
from tests.conftest import eventually
from tests.e2e import test_etcd_outage
from tests.e2e.conftest import Kubectl, OperatorProcess, install_crds

own_plane = test_etcd_outage.own_plane  # a control plane of this module's own (the same fixture)
pytestmark = [
    pytest.mark.e2e,
    # a Kopf handler whose write meets the API server down: Kopf says so at ERROR (the operator's own loops
    # warn); refused while it is down, or cut mid-answer as it stops
    pytest.mark.operator_log_allows(
        r"kopf\.objects: Handler '\w+' failed with an exception.*"
        r"(Connection refused|Connection aborted|RemoteDisconnected|Server ?[dD]isconnected|Connection reset)"
    ),
]


@pytest.mark.timeout(600)
def test_levels_due_while_the_apiserver_restarts_arrive_once(
    own_plane: devcluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    kubectl = Kubectl(own_plane.bindir / "kubectl", own_plane.kubeconfig)
    install_crds(kubectl)
    kubectl.run("create", "namespace", "restart")

    def apply(namespace: str, obj: dict[str, Any]) -> None:
        kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))

    client = kubernetes.config.new_client_from_config(config_file=str(own_plane.kubeconfig))  # type: ignore[no-untyped-call]
    custom = kubernetes.client.CustomObjectsApi(client)
    op = OperatorProcess(own_plane.kubeconfig, tmp_path / "operator.log", env={"ONCALL_TICK_SECONDS": "0.5"})
    with faults.Receiver() as receiver, contextlib.ExitStack() as stack:
        stack.callback(op.stop)
        op.start()
        seen = faults.apiserver_restart(
            custom, apply, "restart", receiver, lambda down: own_plane.restart("kube-apiserver", down), 3, 10.0, due=15
        )
        assert op.proc is not None and op.proc.poll() is None, "the operator died during the restart"
        print(f"\napiserver restart: {json.dumps(dataclasses.asdict(seen))}")
        assert seen.lost == [] and seen.doubled == [], seen
        for i in range(3):  # an outcome whose write met the API server down is written when its lease ends,
            # by the operator still running (stopped at once, it left a Pending the test then waited for in vain)

            def settled(name: str = f"restart-{i}") -> list[str] | None:
                results = [n["result"] for n in faults.notifications(custom, "restart", name)]
                return results if "Pending" not in results else None

            assert eventually(settled, 120, interval=1, what="every step recorded") == ["Delivered", "Delivered"]
