"""etcd frozen for 30 s in the middle of an escalation: the level due meanwhile is paged once it is back.

The module runs its own control plane (the fault would hurt every other module's), freezes
etcd with SIGSTOP (the API server then hangs on every request, as with a partitioned etcd)
right after level 1 was delivered, while level 2 comes due, and thaws it 30 s later. The
operator must neither hang nor die: every API call has a timeout, a failed look is retried
at the next tick, and level 2 arrives, once per delivery id.
"""

import contextlib
import json
import os
import pathlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from oncall_operator import devcluster
from tests import faults
from tests.conftest import REPO, eventually
from tests.e2e.conftest import Kubectl, OperatorProcess, install_crds

OUTAGE_SECONDS = 30


@pytest.fixture(scope="module")
def own_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devcluster.ControlPlane]:
    bindir = devcluster.default_bindir(devcluster.default_workdir(REPO))
    with devcluster.ControlPlane(tmp_path_factory.mktemp("etcd-outage"), bindir) as plane:
        yield plane


@pytest.mark.timeout(600)
def test_a_level_due_while_etcd_is_frozen_is_paged_when_it_is_back(
    own_plane: devcluster.ControlPlane, tmp_path: pathlib.Path
) -> None:
    kubectl = Kubectl(own_plane.bindir / "kubectl", own_plane.kubeconfig)
    install_crds(kubectl)
    kubectl.run("create", "namespace", "outage")

    def apply(obj: dict[str, Any]) -> None:
        kubectl.run("apply", "-n", "outage", "-f", "-", stdin=json.dumps(obj))

    etcd = next(p.pid for p in own_plane.state.processes if p.name == "etcd")
    op = OperatorProcess(own_plane.kubeconfig, tmp_path / "operator.log", env={"ONCALL_TICK_SECONDS": "0.5"})
    with faults.Receiver() as receiver, contextlib.ExitStack() as stack:
        stack.callback(op.stop)
        for obj in faults.policy("p", {"a": receiver.url("ok", "a")}, [("0", "a"), ("20s", "a")]):
            apply(obj)
        op.start()
        apply(faults.incident("during", "p"))
        eventually(lambda: receiver.pages("during"), 60, what="level 1")
        os.kill(etcd, signal.SIGSTOP)
        stack.callback(os.kill, etcd, signal.SIGCONT)  # never leave it frozen
        time.sleep(OUTAGE_SECONDS)  # the fault itself, not a wait for a condition
        os.kill(etcd, signal.SIGCONT)
        thawed = time.time()
        assert op.proc is not None and op.proc.poll() is None, "the operator died during the outage"
        pages = eventually(
            lambda: [h for h in receiver.pages("during") if h.level == 2], 180, interval=0.5, what="level 2"
        )
        assert pages
        ids = {h.id for h in receiver.pages("during")}
        assert len(ids) == 2, receiver.pages("during")
        notes = kubectl.json("get", "incident/during", "-n", "outage")["status"]["escalation"]["notifications"]
        assert [n["result"] for n in notes] == ["Delivered", "Delivered"], notes
        print(f"level 2 arrived {pages[0].at - thawed:.1f}s after etcd was back; {len(ids)} ids")
