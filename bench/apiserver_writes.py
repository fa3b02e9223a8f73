"""What one write of an Incident's status costs kube-apiserver, against the status' size (issue 18).

At 50 alerts/s the API server spent 20 ms of CPU per alert on the alert's three writes, two and a
half times the operator's own CPU (bench/results/SUMMARY.md, session 11): beside a CPU hog the API
server, not the operator, decides whether 50 alerts/s fit on 2 cores. This bench says whether that
cost grows with the object (an Incident's timeline and notifications grow with its life, up to the
byte budget of ``domain/bounds.py``) and what the custom resource costs beyond a built-in kind:
for each size it writes one Incident's status ``--writes`` times, one PUT after another with a
resourceVersion precondition as the operator does, and a ConfigMap holding the same bytes as many
times, and reports the API server's and etcd's CPU per write (from /proc) and the client's round trip.
``--loose-status`` serves the Incident with no schema under status, to tell the schema's share.
Figures go to bench/results/apiserver_writes-<time>.{json,md}, never into timed assertions.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from typing import Any, cast

REPO = pathlib.Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import cluster_scale as cs  # noqa: E402  (cpu_now, plane_pids, summary)
import kubernetes  # noqa: E402
import simcluster  # noqa: E402
import yaml  # noqa: E402

NS = "writes"
AT = "2026-12-03T07:28:10Z"


def status(entries: int, turn: int) -> dict[str, Any]:
    """A Triggered alert Incident's status with ``entries`` timeline entries and notifications."""
    timeline = [
        {"actor": "", "at": AT, "message": f"Level {i % 3 + 1} (l{i % 3 + 1}). -> Ada via hook #{turn}", "type": "Page"}
        for i in range(entries)
    ]
    notes = [
        {
            "at": AT,
            "attempts": 1,
            "channel": "hook",
            "claimedBy": "",
            "key": f"page/L{i + 1}/loop0@1796282890",
            "kind": "page",
            "level": i + 1,
            "loop": 0,
            "message": "hook: delivered (1 attempt): HTTP 200",
            "result": "Delivered",
            "text": "",
            "user": "Ada",
        }
        for i in range(entries)
    ]
    return {
        "phase": "Triggered",
        "firstSeen": AT,
        "lastSeen": AT,
        "occurrences": 1,
        "onCall": "Ada",
        "escalation": {"closed": False, "level": 1, "loop": 0, "notifications": notes, "startedAt": AT},
        "timeline": timeline,
    }


def incident(name: str) -> dict[str, Any]:
    spec = {"title": "bench", "severity": "critical", "source": {"type": "Alertmanager", "alertName": "Bench"}}
    return {"apiVersion": "oncall.dev/v1alpha1", "kind": "Incident", "metadata": {"name": name}, "spec": spec}


def measure(sim: simcluster.SimCluster, entries: int, writes: int) -> dict[str, Any]:
    custom = kubernetes.client.CustomObjectsApi(sim.api)
    core = kubernetes.client.CoreV1Api(sim.api)
    name = f"size-{entries}"
    obj = cast(
        dict[str, Any],
        custom.create_namespaced_custom_object("oncall.dev", "v1alpha1", NS, "incidents", incident(name)),
    )
    cm = core.create_namespaced_config_map(
        NS, kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name=name), data={"status": "{}"})
    )
    pids = {k: v for k, v in cs.plane_pids(sim).items() if k in ("kube-apiserver", "etcd")}
    out: dict[str, Any] = {"entries": entries}
    for kind in ("incident", "configmap"):
        trips, size = [], 0
        cpu0 = cs.cpu_now(pids)
        for turn in range(writes):
            body = status(entries, turn)
            t0 = time.perf_counter()
            if kind == "incident":
                obj["status"] = body
                obj = cast(
                    dict[str, Any],
                    custom.replace_namespaced_custom_object_status(
                        "oncall.dev", "v1alpha1", NS, "incidents", name, obj
                    ),
                )
                size = len(json.dumps(obj, separators=(",", ":")))
            else:
                cm.data = {"status": json.dumps(body, separators=(",", ":"))}
                cm = core.replace_namespaced_config_map(name, NS, cm)
            trips.append((time.perf_counter() - t0) * 1000)
        cpu1 = cs.cpu_now(pids)
        per = {k: round(1000 * (cpu1[k] - cpu0[k]) / writes, 2) for k in pids if k in cpu0 and k in cpu1}
        row: dict[str, Any] = {
            "cpu_ms_per_write": per,
            "round_trip": {k: v for k, v in cs.summary(trips).items() if k != "samples_ms"},
        }
        if kind == "incident":
            row["object_bytes"] = size
        out[kind] = row
        print(json.dumps({"entries": entries, kind: row}), flush=True)
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# kube-apiserver: what an Incident status write costs ({results['at']})",
        "",
        f"`{results['command']}`, commit {results['commit']}, {results['writes']} writes per row, one after another"
        + (", the Incident CRD with no schema under status" if results.get("loose_status") else ""),
        "",
        "| timeline + notifications | object bytes | Incident: apiserver / etcd CPU ms per write"
        " | round trip p50 / p99 ms | ConfigMap, same bytes: apiserver / etcd CPU ms | round trip p50 / p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["sizes"]:
        inc, cm = row["incident"], row["configmap"]
        lines.append(
            f"| {row['entries']} | {inc['object_bytes']} | {inc['cpu_ms_per_write'].get('kube-apiserver')} / "
            f"{inc['cpu_ms_per_write'].get('etcd')} | {inc['round_trip']['p50_ms']} / {inc['round_trip']['p99_ms']} | "
            f"{cm['cpu_ms_per_write'].get('kube-apiserver')} / {cm['cpu_ms_per_write'].get('etcd')} | "
            f"{cm['round_trip']['p50_ms']} / {cm['round_trip']['p99_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", default="2,20,100", help="timeline entries (and notifications), comma-separated")
    parser.add_argument("--writes", type=int, default=300, help="writes per size and kind")
    parser.add_argument(
        "--loose-status", action="store_true", help="the Incident CRD with no schema under status (a comparison)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    results: dict[str, Any] = {
        **cs.run_header("apiserver_writes.py"),
        "writes": args.writes,
        "loose_status": args.loose_status,
    }
    with tempfile.TemporaryDirectory(prefix="writes-bench-") as tmp, simcluster.SimCluster(pathlib.Path(tmp)) as sim:
        sim.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        if args.loose_status:  # the same kind with no schema under status: what its validation costs
            crd = yaml.safe_load((REPO / "crds" / "oncall.dev_incidents.yaml").read_text())
            for version in crd["spec"]["versions"]:
                props = version["schema"]["openAPIV3Schema"]["properties"]
                props["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            sim.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(crd))
        sim.kubectl("wait", "--for", "condition=established", "--timeout=120s", "crd/incidents.oncall.dev")
        sim.kubectl("create", "namespace", NS)
        results["sizes"] = [measure(sim, int(n), args.writes) for n in args.entries.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"apiserver_writes-{results['at']}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {base}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
