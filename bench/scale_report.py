"""The cluster-scale bench's outputs: a markdown summary and a PNG chart from its JSON results.

Separate from bench/cluster_scale.py so that each file can be read in one sitting; nothing here
measures anything.
"""

from __future__ import annotations

import pathlib
from typing import Any


def chart(results: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    pods = [s["pods"] for s in sizes]
    fig, (lat, mem, alert) = plt.subplots(1, 3, figsize=(15, 4.5))
    for who, style in (("operator", "-o"), ("floor", "--s")):
        for p in ("p50_ms", "p99_ms"):
            lat.plot(pods, [s[who][p] for s in sizes], style, label=f"{who} {p[:3]}")
    lat.set(title="OOM kill -> patched Deployment", xlabel="pods in the cluster", ylabel="ms")
    lat.legend()
    mem.plot(pods, [s["operator"]["peak_rss_mib"] or 0 for s in sizes], "-o", label="operator peak RSS")
    mem.plot(pods, [s["operator"]["rss_mib_steady"] for s in sizes], "-^", label="operator RSS, OOM phase")
    mem.plot(pods, [s["floor"]["peak_rss_mib"] for s in sizes], "--s", label="floor peak RSS")
    mem.axhline(150, color="grey", linestyle=":", label="target 150 MiB")
    mem.set(title="Memory", xlabel="pods in the cluster", ylabel="MiB")
    mem.legend()
    for s in sizes:
        rates = [a["rate"] for a in s["alerts"]]
        p99 = [a.get("first_notification", {}).get("p99_ms", float("nan")) for a in s["alerts"]]
        alert.plot(rates, p99, "-o", label=f"{s['pods']} pods")
    alert.axhline(1000, color="grey", linestyle=":", label="target p99 1 s at 50/s")
    alert.set(title="Alert -> first notification p99", xlabel="alerts/s", ylabel="ms", xscale="log", yscale="log")
    alert.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def markdown(results: dict[str, Any]) -> str:
    if not any("floor" in s for s in results["sizes"]):  # --grow-only
        return "\n".join([f"# Cluster growth, {results['at']}", "", f"`{results['command']}`", "", *growth(results)])
    lines = [
        f"# Cluster-scale bench, {results['at']}",
        "",
        f"`{results['command']}` on {results['cores']} cores; kwok {results['kwok']}; "
        f"operator {results.get('variant', 'baseline')}; "
        f"{results['samples']} kills per phase after {results['warmup']} warm-up, {results['gap_s']} s apart; "
        f"total {results['seconds']} s.",
        "",
        "## OOM kill -> patched Deployment (ms; from the kill seen by a watch to the patch seen by a watch)",
        "",
        "| pods | floor p50 | floor p95 | floor p99 | operator p50 | operator p95 | operator p99 "
        "| ratio p50 | ratio p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["sizes"]:
        f, o = s["floor"], s["operator"]
        lines.append(
            f"| {s['pods']} | {f['p50_ms']} | {f['p95_ms']} | {f['p99_ms']} | {o['p50_ms']} | {o['p95_ms']} | "
            f"{o['p99_ms']} | {s['ratio_p50']}x | {s['ratio_p99']}x |"
        )
    lines += [
        "",
        "Targets (docs/ARCHITECTURE.md): p50 within 2x, p99 within 5x of the floor at 10,000 pods.",
        "",
        "## The operator's cost",
        "",
        "| pods | peak RSS MiB | RSS in OOM phase | floor peak RSS MiB | start-up CPU s | settle s "
        "| CPU cores (OOM phase) | "
        "API writes/remediation | dry runs/remediation | requests/remediation | pod writes |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["sizes"]:
        o, a = s["operator"], s["api"]
        lines.append(
            f"| {s['pods']} | {o['peak_rss_mib']} | {o['rss_mib_steady']} | {s['floor']['peak_rss_mib']} | "
            f"{o['cpu']['startup']['cpu_seconds']} | "
            f"{s['operator_settle_s']} | {o['cpu']['oom']['cpu_cores_avg']} | {a['writes_per_remediation']} | "
            f"{a['dry_runs_per_remediation']} | {a['total_per_remediation']} | "
            f"{a['pod_writes_per_remediation']} (objects: {s['pod_writes_by_operator_objects']}) |"
        )
    lines += [
        "",
        "Targets: under 150 MiB at 10,000 pods; at most 3 API writes per remediation; zero writes to Pods.",
        "Requests per remediation are the API server's `apiserver_request_total` in the operator's window minus",
        "the floor's (same kills, same rollouts), plus the floor's own one patch; the metric has no user-agent label.",
        "",
        "## Alert -> Incident -> first notification (ms)",
        "",
        "| pods | rate/s | achieved/s | alerts | notified | intake p50 | intake p99 | first page p50 | p95 | p99 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["sizes"]:
        for a in s["alerts"]:
            fn = a.get("first_notification", {})
            lines.append(
                f"| {s['pods']} | {a['rate']} | {a['achieved_rate']} | {a['alerts']} | {a['notified']} | "
                f"{a['intake']['p50_ms']} | {a['intake']['p99_ms']} | {fn.get('p50_ms')} | {fn.get('p95_ms')} | "
                f"{fn.get('p99_ms')} |"
            )
    lines += ["", "Target: p99 under 1 s at 50 alerts/s.", ""]
    lines += cpu(results)
    lines += growth(results)
    lines += audited(results)
    lines += before_after(results)
    for s in results["sizes"]:
        if "profile" in s and "self_pct" in s["profile"]:
            lines += [f"## py-spy profile at {s['pods']} pods (top frames by own samples)", ""]
            lines += [f"- {pct}% {frame}" for frame, pct in s["profile"]["self_pct"][:10]]
            lines.append("")
    return "\n".join(lines)


def before_after(results: dict[str, Any]) -> list[str]:
    """The operator at ``--before`` against the current one, same cluster, same floor, same run."""
    sizes = [s for s in results["sizes"] if s.get("before")]
    if not sizes:
        return []
    lines = [
        f"## Before ({str(results.get('before', ''))[:12]}) and after, in this run",
        "",
        "| pods | who | OOM p50 ms (ratio) | OOM p99 ms (ratio) | RSS OOM phase MiB | peak RSS MiB "
        "| writes/remediation | requests/remediation | first page p99 ms by rate |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in sizes:
        for who, r in (("before", s["before"]), ("after", s)):
            o, a = r["operator"], r["api"]
            audit = a.get("audit_per_remediation")
            writes = f"{audit['writes']} + {audit['events']} Events" if audit else a["writes_per_remediation"]
            total = audit["requests_total"] if audit else a["total_per_remediation"]
            pages = ", ".join(
                f"{x['rate']:g}/s: {x.get('first_notification', {}).get('p99_ms')}" for x in r.get("alerts", [])
            )
            lines.append(
                f"| {s['pods']} | {who} | {o['p50_ms']} ({r['ratio_p50']}x) | {o['p99_ms']} ({r['ratio_p99']}x) | "
                f"{o['rss_mib_steady']} | {o['peak_rss_mib']} | {writes} | {total} | {pages} |"
            )
    return [*lines, ""]


def audited(results: dict[str, Any]) -> list[str]:
    """The operator's own requests by its user agents, from the API server's audit log."""
    rows = []
    for s in results["sizes"]:
        for who, r in (("after", s), ("before", s.get("before"))):
            if not r or "audit_per_remediation" not in r.get("api", {}):
                continue
            windows = [("per remediation", r["api"]["audit_per_remediation"])]
            windows += [(f"per alert at {x['rate']:g}/s", x["audit_per_alert"]) for x in r.get("alerts", [])]
            for what, a in windows:
                rows.append(
                    f"| {s['pods']} | {who if s.get('before') else ''} | {what} | {a['writes']} | {a['events']} | "
                    f"{a['dry_runs']} | {a['refused']} | {a['requests_total']} | {a['pod_writes']} |"
                )
    if not rows:
        return []
    legs = ("patch deployments (dry-run)", "create pods (dry-run)", "patch deployments", "get replicasets")
    timed = []
    for s in results["sizes"]:
        for who, r in (("after", s), ("before", s.get("before"))):
            server = ((r or {}).get("api", {}).get("audit_per_remediation") or {}).get("server_ms_p50")
            if server:
                timed.append(f"| {s['pods']} | {who} | " + " | ".join(str(server.get(k, "")) for k in legs) + " |")
    if timed:
        rows += [
            "",
            "The API server's own time (received -> answered, p50 ms) for the remediation's requests:",
            "",
            "| pods | operator | " + " | ".join(legs) + " |",
            "| ---: | --- | " + " | ".join("---:" for _ in legs) + " |",
            *timed,
        ]
    return [
        "## The operator's requests, by its user agents in the API server's audit log",
        "",
        "| pods | operator | window | writes (no Events) | Events | dry runs | refused (4xx) | all requests "
        "| pod writes |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "Writes are create/update/patch/delete answered 2xx; a 409 on a resourceVersion precondition is",
        "counted as refused, not as a write. Per remediation: the OOM window (one kill per Deployment).",
        "",
    ]


def growth(results: dict[str, Any]) -> list[str]:
    """How fast the simulated cluster grew to each size, and which process was busy meanwhile."""
    sizes = [s for s in results["sizes"] if "grow" in s]
    if not sizes:
        return []
    columns = (*CPU_COLUMNS[:1], *CPU_COLUMNS[2:-1], "kube-scheduler", "harness")
    lines = [
        "## Growing the cluster (kwok): pods Running per second, and the cores each process used meanwhile",
        "",
        "| pods | added | seconds | pods/s | load before/after | " + " | ".join(columns) + " |",
        "| ---: | ---: | ---: | ---: | --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for s in sizes:
        g = s["grow"]
        cores = " | ".join(str(g["cpu_cores"].get(k, "")) for k in columns)
        load = f"{g.get('load_before', 0):.1f} / {g.get('load_after', 0):.1f}"
        lines.append(f"| {s['pods']} | {g['pods_added']} | {g['seconds']} | {g['pods_per_s']} | {load} | {cores} |")
    return [*lines, ""]


def cpu(results: dict[str, Any]) -> list[str]:
    """Who used the cores while alerts were posted: the operator shares them with the cluster it serves."""
    rows = [
        f"| {s['pods']} | {a['rate']:g} | " + " | ".join(str(a["cpu_cores"].get(k, "")) for k in CPU_COLUMNS) + " |"
        for s in results["sizes"]
        for a in s.get("alerts", [])
        if "cpu_cores" in a
    ]
    if not rows:
        return []
    return [
        "## Cores used while the alerts were handled (all processes share the machine)",
        "",
        "| pods | rate/s | " + " | ".join(CPU_COLUMNS) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in CPU_COLUMNS) + " |",
        *rows,
        "",
    ]


CPU_COLUMNS = ("machine", "operator", "kube-apiserver", "etcd", "kwok", "kube-controller-manager", "harness")
