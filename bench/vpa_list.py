"""What the VerticalPodAutoscaler list costs an OOM kill, beside the two server-side dry-runs.

Each kill asks whether a VPA manages the workload. Where the cluster serves VPAs the operator
reads them from a watch-fed cache (``adapters/caches.py``); where it does not (404) or before
that cache has listed, it lists them in the workload's namespace, at the same time as the
dry-runs (``executor/oom.py``). This measures, on a running control plane, the list alone, the
dry-runs alone and both together, with no VPA API (404) or with the VPA CRD and ``--vpas`` VPAs:

    make cluster-up
    KUBECONFIG=.cluster/kubeconfig .venv/bin/python bench/vpa_list.py --samples 200 [--vpas 50]

It creates the namespace ``vpa-list-bench`` and deletes it at the end; ``--vpas`` installs the
VPA CRD (the e2e tests' trimmed one) and leaves it. Figures are for notes, never for assertions.
"""

import argparse
import asyncio
import json
import pathlib
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tests.e2e's VPA CRD, however this file is run
    sys.path.insert(0, str(REPO))

from tests.e2e.test_oom_owners import VPA_CRD  # noqa: E402

from oncall_operator.adapters import apiserver, kube, workloads  # noqa: E402
from oncall_operator.domain import workload  # noqa: E402
from oncall_operator.executor import patching  # noqa: E402

NS = "vpa-list-bench"


def vpas(n: int) -> dict[str, Any]:
    target = {"apiVersion": "apps/v1", "kind": "Deployment"}
    items = [
        {
            "apiVersion": "autoscaling.k8s.io/v1",
            "kind": "VerticalPodAutoscaler",
            "metadata": {"name": f"v{i}", "namespace": NS},
            "spec": {"targetRef": {**target, "name": f"other-{i}"}, "updatePolicy": {"updateMode": "Auto"}},
        }
        for i in range(n)
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def kubectl(*args: str, stdin: dict[str, Any] | None = None) -> None:
    data = json.dumps(stdin).encode() if stdin is not None else None
    subprocess.run([str(REPO / ".cluster/bin/kubectl"), *args], input=data, check=True, capture_output=True)


async def timed(label: str, call: Callable[[], Awaitable[Any]], samples: int) -> None:
    for _ in range(10):  # warm the connection pool and the API server's caches
        await call()
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await call()
        took.append(time.perf_counter() - t0)
    took.sort()
    p50, p95 = statistics.median(took) * 1000, took[int(len(took) * 0.95)] * 1000
    print(f"{label}: p50 {p50:.2f} ms, p95 {p95:.2f} ms (n={samples})")


async def main(samples: int, n_vpas: int) -> None:
    kubectl("create", "namespace", NS)
    if n_vpas:
        kubectl("apply", "-f", "-", stdin=VPA_CRD)
        kubectl("wait", "--for=condition=Established", "crd/verticalpodautoscalers.autoscaling.k8s.io")
        kubectl("apply", "-f", "-", stdin=vpas(n_vpas))
    container = {"name": "app", "image": "x", "resources": {"limits": {"memory": "100Mi"}}}
    spec = {"containers": [container]}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": spec}
    dep = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template}
    kubectl(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        stdin={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": dep},
    )
    api = apiserver.Api(kube.Kube.connect())
    try:
        obj = await workloads.read(api, "Deployment", NS, "web")
        assert obj is not None
        w = workload.read(obj)
        ops = [{"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory", "value": "200Mi"}]
        probe = workload.probe_pod(w, w.template)

        def listing() -> Awaitable[Any]:
            return workloads.list_items(api, "VerticalPodAutoscaler", NS)

        def dry_runs() -> Awaitable[Any]:
            return patching.dry_runs(api, "Deployment", NS, "web", ops, probe, True)

        print(f"VerticalPodAutoscalers: {n_vpas or 'none: the API is not served'}")
        await timed("the VPA list", listing, samples)
        await timed("the dry-runs (patch and pod)", dry_runs, samples)
        await timed("both at once (a kill without the cache)", lambda: asyncio.gather(listing(), dry_runs()), samples)
    finally:
        await api.close()
        kubectl("delete", "namespace", NS, "--wait=false")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--vpas", type=int, default=0, help="install the VPA CRD and this many VPAs in the namespace")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.vpas))
