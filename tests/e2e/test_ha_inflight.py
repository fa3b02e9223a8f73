"""A leader killed in the middle of a send: the standby sends that page again once peering says the leader is gone.

Another pod's Pending claim holds until its lease ends (60 s), so two replicas that both act
never page twice (``test_two_writers.py``). But a standby that took over knows more: the
leader's keep-alive expired in the peering object, so its claims are nobody's, and waiting
for their leases would only delay the page. Two replicas as the chart runs them (``POD_ID`` is
the pod, Kopf's peering identity too); the leader is SIGKILLed the moment its claim shows
Pending, its request stalled at the receiver (never counted). The standby must send
the page under the same delivery id before the dead claim's lease would have ended (its
``retryAt``, written on the Incident at the claim).
"""

import datetime as dt
import json
import pathlib

import kubernetes
import pytest

from oncall_operator import devcluster
from tests import faults
from tests.conftest import eventually
from tests.e2e import test_ha as ha
from tests.e2e.conftest import Kubectl
from tests.e2e.helm_support import Helm, chart_operator, install, service_account_kubeconfig, uninstall

pytestmark = pytest.mark.e2e
helm = ha.helm  # the same module fixture: the chart's helm


def test_a_standby_resends_a_dead_leaders_claim_before_its_lease_ends(
    helm: Helm, kubectl: Kubectl, control_plane: devcluster.ControlPlane, namespace: str, tmp_path: pathlib.Path
) -> None:
    release = install(helm, kubectl, f"hi{namespace[-6:]}", namespace, dry_run_first=False)
    kubeconfig = service_account_kubeconfig(control_plane, kubectl, release, tmp_path / "sa.kubeconfig")
    custom = kubernetes.client.CustomObjectsApi(
        kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    )
    replicas: list[ha.Replica] = []
    try:
        with faults.Receiver() as receiver:
            for obj in faults.policy("p", {"a": receiver.url("stall", "inflight")}, [("0", "a")]):
                kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))
            for pod in ("pod-a", "pod-b"):
                process = chart_operator(release, kubeconfig, tmp_path / f"{pod}.log", pod, ONCALL_TICK_SECONDS="0.5")
                replicas.append(ha.Replica(process))
                process.start()
                eventually(replicas[0].active, 30, what="pod-a leading")  # before pod-b starts: pod-a leads
            leader, standby = replicas
            eventually(standby.standing_by, 30, what="pod-b standing by")
            kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(faults.incident("inflight", "p")))

            def pending() -> list[dict[str, object]]:
                notes = faults.notifications(custom, namespace, "inflight")
                return [n for n in notes if n["result"] == "Pending" and str(n["claimedBy"]).startswith("pod-a/")]

            [claim] = eventually(pending, 60, interval=0.02, what="pod-a's claim")
            leader.process.kill()  # its send is stalled at the receiver: nothing was counted
            killed = dt.datetime.now(dt.UTC)
            lease_end = dt.datetime.fromisoformat(str(claim["retryAt"]).replace("Z", "+00:00"))
            [hit] = eventually(lambda: receiver.pages("inflight"), 120, interval=0.2, what="the page, re-sent")
            sent = dt.datetime.fromtimestamp(hit.at, dt.UTC)
            print(f"\nre-sent {(sent - killed).total_seconds():.1f}s after the kill; the lease ended {lease_end:%T}")
            assert sent < lease_end, f"re-sent at {sent:%T}, only once the dead leader's lease ended ({lease_end:%T})"
            settled = eventually(
                lambda: [n for n in faults.notifications(custom, namespace, "inflight") if n["result"] == "Delivered"],
                60,
                what="the page recorded",
            )
            assert str(settled[0]["key"]) == str(claim["key"])  # the same step, hence the same delivery id
            assert [h.id for h in receiver.pages("inflight")] == [hit.id]
    finally:
        for r in replicas:
            r.process.stop()
        uninstall(kubectl, release)
