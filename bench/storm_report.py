"""The storm bench's markdown summary (bench/storm.py): one table per variant, one column per size."""

from __future__ import annotations

from typing import Any

import op_metrics

ROWS = (
    ("open Incidents", lambda s: s["open_incidents"]),
    ("alerts posted / achieved rate /s", lambda s: f"{s['storm']['alerts']} / {s['storm']['achieved_rate']}"),
    ("intake answers", lambda s: s["storm"]["codes"]),
    ("operator CPU per alert (ms)", lambda s: s["storm"]["operator_cpu_ms_per_alert"]),
    (
        "leader RSS steady / peak (MiB)",
        lambda s: f"{s['leader_rss_mib']['steady']:.0f} / {s['leader_rss_mib']['peak']}",
    ),
    (
        "due level-2 pages: n, late p50 / p99 (ms)",
        lambda s: f"{s['lateness']['n']}, {s['lateness'].get('p50_ms')} / {s['lateness'].get('p99_ms')}",
    ),
    (
        "the operator's histograms in the storm: n, p50 / p99 (s)",
        lambda s: op_metrics.line(s["lateness"].get("waits")),
    ),
    ("pages after an acknowledgement", lambda s: s["lateness"]["pages_after_ack"]),
    (
        "steady phase, storm over: due level-2 pages n, late p50 / p99 (ms)",
        lambda s: (
            f"{s['steady']['lateness']['n']}, {s['steady']['lateness'].get('p50_ms')} / "
            f"{s['steady']['lateness'].get('p99_ms')} (posted at {s['steady']['achieved_rate']}/s)"
            if "steady" in s
            else "not run"
        ),
    ),
    (
        "the operator's histograms, steady phase: n, p50 / p99 (s)",
        lambda s: op_metrics.line(s["steady"]["lateness"].get("waits")) if "steady" in s else "not run",
    ),
    (
        "API requests / writes per idle tick",
        lambda s: f"{s['api_per_idle_tick']['requests']} / {s['api_per_idle_tick']['writes']}",
    ),
    (
        "standby start / settle (s), RSS (MiB)",
        lambda s: (
            f"{s['takeover']['standby_start_s']} / "
            f"{s['takeover']['standby_settle_s']}, {s['takeover']['standby_rss_mib']:.0f}"
        ),
    ),
    (
        "takeover: freeze -> first due page (s)",
        lambda s: f"{s['takeover']['takeover_first_due_page_s']} (lifetime {s['takeover']['peering_lifetime_s']})",
    ),
    ("restart: start -> first due page (s)", lambda s: s["takeover"]["restart_first_due_page_s"]),
    ("restarted: RSS once settled (MiB)", lambda s: s["takeover"].get("restart_settled_rss_mib")),
    ("load average before / after", lambda s: f"{s['load_before']} / {s['load_after']}"),
)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Alert storm {results['at']}",
        "",
        f"`{results['command']}`",
        "",
        f"commit {results['commit']}, {results['cores']} cores, settings {results['settings']}, "
        f"load average at start {results['load_start']}, at end {results['load_end']}, {results['seconds']} s",
        "",
    ]
    for title, sizes in (
        ("Before (" + results.get("before", "")[:12] + ")", results.get("before_sizes")),
        ("This tree", results["sizes"]),
    ):
        if not sizes:
            continue
        lines += [
            f"## {title}",
            "",
            "| | " + " | ".join(str(s["open_incidents"]) for s in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        lines += [f"| {name} | " + " | ".join(str(get(s)) for s in sizes) + " |" for name, get in ROWS]
        lines.append("")
    return "\n".join(lines)
