"""Where a due page waited, from the operator's own histograms on /metrics (issue 18).

The storm bench measures how late a level-2 page reaches its receiver. The operator says where the
time went: ``oncall_escalation_look_delay_seconds`` (due -> the escalation loop's look started),
``oncall_escalation_page_lateness_seconds`` (due -> the page's sends finished) and
``oncall_event_loop_lag_seconds`` (the event loop's backlog). :func:`scrape` reads them;
:func:`between` turns two scrapes into count, p50 and p99 (a bucket's upper bound, as Prometheus'
``histogram_quantile`` would bound it) of what happened between them.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

NAMES = {
    "look_delay": "oncall_escalation_look_delay_seconds",
    "page_lateness": "oncall_escalation_page_lateness_seconds",
    "loop_lag": "oncall_event_loop_lag_seconds",
}
Buckets = dict[str, dict[float, float]]


def scrape(port: int) -> Buckets:
    """Each histogram's cumulative bucket counts (labels summed), by its short name; {} when unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    short = {v: k for k, v in NAMES.items()}
    out: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name not in short:
            continue
        buckets = out.setdefault(short[family.name], {})
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return out


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (inf: above the last bound)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    for bound in bounds:
        if buckets[bound] >= q * total:
            return bound
    return bounds[-1]


def between(before: Buckets, after: Buckets) -> dict[str, Any]:
    """Count, p50 and p99 (seconds, a bucket's upper bound) of each histogram's observations between two scrapes."""
    out: dict[str, Any] = {}
    for name, counts in after.items():
        delta = {b: v - before.get(name, {}).get(b, 0.0) for b, v in counts.items()}
        total = delta.get(float("inf"), 0.0)
        out[name] = {"n": int(total), "p50_s": quantile(delta, 0.5), "p99_s": quantile(delta, 0.99)}
    return out


def line(waits: dict[str, Any] | None) -> str:
    """One cell of the report: each histogram's n, p50 / p99."""
    if not waits:
        return "not measured"
    return "; ".join(f"{k} {v['n']}, {v['p50_s']} / {v['p99_s']}" for k, v in sorted(waits.items()))
