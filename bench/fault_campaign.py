"""The fault campaign at full size: SIGKILL rounds, a receiver outage, a black hole, an API server restart; the figures.

The same code as ``tests/e2e/test_delivery_faults.py`` and ``test_apiserver_restart.py``
(``tests/faults.py``), on a control plane of its own, with many more kill rounds and Incidents:

    python bench/fault_campaign.py [--rounds 20] [--seed 7]

Results go to bench/results/fault_campaign-<time>.json; the figures are for notes, never for
timed assertions.
"""

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import kubernetes

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import faults  # noqa: E402
from tests.conftest import eventually  # noqa: E402
from tests.e2e.conftest import OperatorProcess  # noqa: E402

from oncall_operator import devcluster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--parts", default="kill,outage,hole,restart", help="which of kill, outage, hole, restart")
    parser.add_argument("--restart-incidents", type=int, default=30, help="Incidents escalating across the restart")
    parser.add_argument("--operator-src", help="run the operator (and its CRDs) from this checkout instead")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    src = pathlib.Path(args.operator_src).resolve() if args.operator_src else REPO
    bindir = devcluster.default_bindir(devcluster.default_workdir(REPO))
    report: dict[str, Any] = {"rounds": args.rounds, "seed": args.seed, "operator": str(src)}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = pathlib.Path(tmp)
        plane = stack.enter_context(devcluster.ControlPlane(work / "cluster", bindir))

        def k(*a: str, stdin: str | None = None) -> str:
            cmd = [str(bindir / "kubectl"), "--kubeconfig", str(plane.kubeconfig), *a]
            return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True, timeout=120).stdout

        k("apply", "--server-side", "-f", str(src / "crds"))
        k(
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=oncall-operator",
        )

        def apply(namespace: str, obj: dict[str, Any]) -> None:
            k("apply", "-n", namespace, "-f", "-", stdin=json.dumps(obj))

        custom = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(plane.kubeconfig)))
        env = {"ONCALL_TICK_SECONDS": "0.5", **({"PYTHONPATH": str(src / "operator")} if args.operator_src else {})}
        op = OperatorProcess(plane.kubeconfig, work / "operator.log", env=env)
        stack.callback(op.stop)
        receiver = stack.enter_context(faults.Receiver(hold=2.0, fail_for=25.0))
        hole = stack.enter_context(faults.BlackHole())
        op.start()
        if "kill" in parts:
            k("create", "namespace", "kills")
            report["kill"] = kills(custom, apply, op, receiver, args.rounds, args.seed, bool(args.operator_src))
        if "outage" in parts:
            k("create", "namespace", "outage")
            report["outage"] = outage(apply, receiver)
        if "hole" in parts:
            k("create", "namespace", "hole")
            report["black_hole"] = black_hole(custom, apply, receiver, hole)
        if "restart" in parts:  # last: the restart breaks every watch of the operator
            k("create", "namespace", "restart")
            restarted = faults.apiserver_restart(
                custom,
                apply,
                "restart",
                receiver,
                lambda down: plane.restart("kube-apiserver", down),
                args.restart_incidents,
                15.0,
                due=30,
            )
            report["apiserver_restart"] = dataclasses.asdict(restarted)

    out = REPO / "bench" / "results" / f"fault_campaign-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    if "kill" in report:
        report["kill"] = {key: v for key, v in report["kill"].items() if key != "per_round"}
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


Apply = Callable[[str, dict[str, Any]], None]


def kills(
    custom: Any, apply: Apply, op: OperatorProcess, receiver: faults.Receiver, n: int, seed: int, baseline: bool
) -> Any:
    """SIGKILL rounds; a ``baseline`` (another checkout) may lose pages: such rounds are counted, not failed."""
    started = time.monotonic()
    kill = faults.Operator(op.start, op.kill)
    rounds = faults.kill_rounds(
        custom,
        apply,
        "kills",
        receiver,
        kill,
        n,
        random.Random(seed),
        deadline=40 if baseline else 180,
        lost_ok=baseline,
    )
    return {
        "seconds": round(time.monotonic() - started, 1),
        "claimed_pages": sum(r.distinct for r in rounds),
        "raw_deliveries": sum(r.raw for r in rounds),
        "distinct_ids": sum(r.distinct for r in rounds),
        "rounds_with_a_resend": sum(r.raw > r.distinct for r in rounds),
        "rounds_complete": sum(r.distinct == 2 for r in rounds),
        "per_round": [dataclasses.asdict(r) for r in rounds],
    }


def outage(apply: Apply, receiver: faults.Receiver) -> Any:
    for obj in faults.policy("fl", {"a": receiver.url("flaky", "outage")}, [("0", "a")]):
        apply("outage", obj)
    apply("outage", faults.incident("outage", "fl"))
    t0 = time.time()
    hit = eventually(lambda: receiver.pages("outage"), 180, interval=0.5, what="the page after the outage")
    return {"down_seconds": receiver.fail_for, "refused": receiver.refused, "arrived_after": round(hit[0].at - t0, 1)}


def black_hole(custom: Any, apply: Apply, receiver: faults.Receiver, hole: faults.BlackHole) -> Any:
    for obj in faults.policy("bh", {"a": f"http://127.0.0.1:{hole.port}/hook"}, [("0", "a"), ("1s", "a")]):
        apply("hole", obj)
    for obj in faults.policy("ok", {"a": receiver.url("ok", "a")}, [("0", "a"), ("8s", "a")]):
        apply("hole", obj)
    for i in range(5):
        apply("hole", faults.incident(f"stuck-{i}", "bh"))
    late: list[float] = []
    for i in range(5):
        name = f"healthy-{i}"
        apply("hole", faults.incident(name, "ok"))

        def level2(name: str = name) -> list[faults.Hit]:
            return [h for h in receiver.pages(name) if h.level == 2]

        l2 = eventually(level2, 120, interval=0.2, what=name)[0]
        obj = custom.get_namespaced_custom_object("oncall.dev", "v1alpha1", "hole", "incidents", name)
        started = obj["status"]["escalation"]["startedAt"].replace("Z", "+00:00")
        late.append(round(l2.at - dt.datetime.fromisoformat(started).timestamp() - 8, 2))
    return {"stuck_incidents": 5, "healthy_level2_late_seconds": late}


if __name__ == "__main__":
    main()
