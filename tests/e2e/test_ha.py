"""High availability: two replicas, one acts; a crashed leader's standby finishes its escalation once.

Both replicas run exactly as the chart's pods would: the rendered Deployment's arguments
(``--peering``, the chart's default lifetime of 15 s), its environment, and a TokenRequest
token of the chart's ServiceAccount. They elect the active one through Kopf peering in the
chart's ClusterKopfPeering: the first started leads. The test checks that only the leader
acts (on an OOM kill and on an Incident), SIGKILLs it in the middle of an escalation, and
counts what the receivers got per level: every level exactly once, whoever sent it. It
measures the takeover (from the kill to the standby's first notification) and a graceful
handover (SIGTERM: Kopf withdraws its record, the standby resumes at once), and prints both:
the figures are for notes, never asserted (a busy machine makes any of them longer).
"""

import datetime as dt
import pathlib
import re
import time
from collections.abc import Callable

import kubernetes
import pytest

from oncall_operator import devcluster
from tests.conftest import eventually
from tests.e2e import test_escalation as esc
from tests.e2e.conftest import Kubectl, OperatorProcess
from tests.e2e.helm_support import Helm, chart_operator, install, service_account_kubeconfig, uninstall
from tests.e2e.oom_support import AGENT, Cluster, runbook, workload
from tests.e2e.test_helm import http
from tests.peers import Peer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def helm(control_plane: devcluster.ControlPlane) -> Helm:
    return Helm(control_plane.bindir / "helm")


class Replica:
    """One operator process of the release, and what it says about itself on /metrics."""

    def __init__(self, process: OperatorProcess) -> None:
        self.process = process

    def gauge(self, name: str) -> float | None:
        code, text = http("GET", f"http://127.0.0.1:{self.process.http_port}/metrics")
        found = re.search(rf"^{name} (\S+)$", text, re.M) if code == 200 else None
        return float(found.group(1)) if found else None

    def active(self) -> bool:
        return self.gauge("oncall_operator_active") == 1.0

    def standing_by(self) -> bool:
        return self.gauge("oncall_operator_active") == 0.0 and self.gauge("oncall_operator_peers") == 2.0

    def acted(self) -> list[str]:
        """The handler, timer and OOM lines of its log: what it did to objects."""
        return [line for line in self.process.log.read_text().splitlines() if any(who in line for who in ACTORS)]


ACTORS = ("kopf.objects:", "oncall_operator.executor.oom", "oncall_operator.executor.escalation")
"""Log lines that only an acting replica writes: Kopf's handler lines, remediations, claimed steps."""


def log_time(log: pathlib.Path, text: str) -> float:
    """The wall-clock time of the first log line containing ``text``."""
    line = next(x for x in log.read_text().splitlines() if text in x)
    stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone()
    return stamp.timestamp()


def test_one_replica_acts_and_the_standby_finishes_a_crashed_leaders_escalation(
    helm: Helm,
    kubectl: Kubectl,
    control_plane: devcluster.ControlPlane,
    namespace: str,
    peer: Peer,
    smtp_port: int,
    tmp_path: pathlib.Path,
    record_property: Callable[[str, object], None],
) -> None:
    release = install(helm, kubectl, f"ha{namespace[-6:]}", namespace, dry_run_first=False)
    kubeconfig = service_account_kubeconfig(control_plane, kubectl, release, tmp_path / "sa.kubeconfig")
    replicas: list[Replica] = []

    def replica(pod: str) -> Replica:
        process = chart_operator(release, kubeconfig, tmp_path / f"{pod}.log", pod, ONCALL_TICK_SECONDS="0.5")
        replicas.append(Replica(process))
        return replicas[-1]

    admin = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    admin.user_agent = AGENT
    cluster = Cluster(admin, kubectl)
    try:
        levels = ("15s", "19s")  # the leader is killed after L1 and well before L2, even on a busy machine
        esc.setup(kubectl, namespace, peer, smtp_port, levels=levels)
        cluster.apply(namespace, runbook(), workload("Deployment", "web", "200Mi", request="100Mi"))
        a = replica("pod-a")
        a.process.start()
        eventually(a.active, 30, what="the first replica leading")
        b = replica("pod-b")
        b.process.start()
        eventually(b.standing_by, 30, what="the second replica standing by, seeing two peers")
        assert a.active()

        # exactly one acts: on an OOM kill...
        cluster.kill(namespace, cluster.wait_pod(namespace, "app=web"))
        cluster.wait_limit("Deployment", namespace, "web", "300Mi")
        cluster.wait_incident(namespace, "Deployment", "web", "mitigated", phase="Mitigated")
        # ...and on an Incident's escalation
        esc.open_incident(kubectl, namespace)
        eventually(lambda: ("page/L1/loop0", "pagerduty", "Delivered") in esc.steps(kubectl, namespace), 30, what="L1")
        assert any("OOM" in line for line in a.acted()) and any("claimed page/" in line for line in a.acted())
        assert b.acted() == [], b.acted()[:5]

        # the leader crashes in the middle of the escalation
        assert "page/L2/loop0" not in [k for k, _, _ in esc.steps(kubectl, namespace)]
        sent = len(peer.accepted)
        killed = time.time()
        a.process.kill()
        eventually(lambda: len(peer.accepted) > sent, 60, interval=0.05, what="the standby's first notification")
        takeover = time.time() - killed
        resumed = log_time(b.process.log, "Resuming operations") - killed
        eventually(
            lambda: ("page/L3/loop0", "slack", "Delivered") in esc.steps(kubectl, namespace), 30, what="L3 by pod-b"
        )
        esc.loop_passed(kubectl, namespace, peer, esc.due(kubectl, namespace, levels[1]))  # anything twice: sent by now
        assert esc.pages_per_level(kubectl, namespace, peer) == esc.ONCE_EACH
        assert b.active() and any("claimed page/" in line for line in b.acted())

        # a restarted replica does not take the lead back; a graceful exit hands over at once
        c = replica("pod-c")
        c.process.start()
        eventually(c.standing_by, 30, what="the restarted replica standing by (the older one keeps leading)")
        assert b.active()
        stopped = time.time()
        b.process.stop()  # SIGTERM, as at a rolling update or a drain
        eventually(c.active, 30, interval=0.05, what="the last replica leading")
        handover = log_time(c.process.log, "Resuming operations") - stopped

        lifetime = next(a for a in release.operator_args(0) if a.startswith("--peering-lifetime"))
        record_property("takeover_seconds", round(takeover, 2))
        record_property("graceful_handover_seconds", round(handover, 2))
        print(
            f"\nHA: takeover after SIGKILL {takeover:.1f}s to the standby's first notification "
            f"(resumed {resumed:.1f}s after the kill; peering {lifetime}); "
            f"graceful handover after SIGTERM {handover:.2f}s"
        )
        # the leaving replica withdrew its record, so nobody waits for its lifetime to run out
        peering = next(a.split("=", 1)[1] for a in release.operator_args(0) if a.startswith("--peering="))
        records = kubectl.json("get", "clusterkopfpeering", peering).get("status") or {}
        assert "pod-b" not in records and "pod-c" in records, records
    finally:
        for r in replicas:
            r.process.stop()
        uninstall(kubectl, release)
