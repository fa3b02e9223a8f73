"""The alert-storm bench (issue 18): thousands of open Incidents, how late their due pages go out, and takeover.

cluster_scale.py measures pods and a few hundred Incidents; an on-call operator dies in a bad week
with thousands open. This bench grows the open Incidents through the sizes asked for (1k, 5k, 10k
by default), all made through the real intake (Alertmanager v4 payloads to /api/v1/alerts, one
alert group each, spread over ``--namespaces`` namespaces), and at each size measures:

- the operator's RSS (VmRSS / VmHWM from /proc) and its CPU per alert while the storm arrives;
- how late each due level-2 page reaches the local webhook receiver against the step's due time
  (``status.escalation.startedAt`` + the namespace's level-2 ``after``: what ``nextStepAt`` says
  while level 1 stands), p50/p99. Severities are mixed (critical and warning page, info only
  notifies) and a share (``--acked``) is acknowledged right after its first page: a level-2 page of
  an acknowledged Incident is counted as a wrong page. Each namespace's policy escalates after its
  own delay (``--after`` plus 6 s per namespace), so the due steps are spread in time;
- the same lateness once the storm is over (``--steady``, 300 alerts at 5/s into a namespace of their
  own, level 2 after 30 s): pages due while ``size`` Incidents are open and only the escalation's own
  work is on the API server. The storm's figure above also holds how late the intake's writes made
  the pages while the storm saturated the machine; this one is the escalation loop's lateness;
- the operator's API requests per escalation tick while nothing is due and per due page, from the
  API server's audit log by user agent (cluster_scale.Audit);
- takeover: a standby replica joins the Kopf peering (``--peering-lifetime``); Kopf pauses its
  streams while it stands by, and the operator's own Incident watch goes on and keeps what it shows
  (``adapters/kept.py``; a ``--before`` older than that lists every open Incident when it takes
  over). Probe Incidents are paged at level 1, the leader is frozen (SIGSTOP: a node gone silent)
  before their level 2 is due, and the figure is the time from the freeze to the standby's first level-2 page;
- start-up: the acting replica stops gracefully with probe steps about to be due, a new process
  starts, and the figure is the time from its start to its first due page.

Both operators run with the per-namespace new-Incident limit raised (ONCALL_NEW_INCIDENTS_BURST,
ONCALL_NEW_INCIDENTS_PER_MINUTE) and any open-Incident cap per namespace raised: the bench measures
the escalation's cost, not those guards. ``--tick`` is the escalation loop's ONCALL_TICK_SECONDS
(the chart's default, 5 s, unless told). Figures go to bench/results/ (JSON and markdown with the
exact command and the load average beside them), never into timed assertions.
``make bench-storm`` runs it; ``BENCH_STORM_ARGS="--sizes 1000 --before HEAD~3"`` to choose.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import cluster_scale as cs  # noqa: E402  (its sampler, audit-log reader, checkout and summaries)
import hog  # noqa: E402
import kubernetes  # noqa: E402
import oom_latency as floorlib  # noqa: E402
import op_metrics  # noqa: E402
import simcluster  # noqa: E402
import storm_report  # noqa: E402
from storm_alerts import Pages, handbook, payload, post  # noqa: E402

from oncall_operator.domain import alerts as am  # noqa: E402

PEERING = "storm-bench"
PROBE_AFTER = 4  # seconds to the probes' level 2: due soon after their level-1 page
STEADY_AFTER = 30  # seconds to level 2 in the steady namespace: due while nothing but the open Incidents is there
RAISED = cs.GUARDS_RAISED  # the guards against a storm are not what this bench measures (see the docstring)


@dataclasses.dataclass
class Operator:
    """One operator process in the peering: its intake URL and its /proc sampler."""

    proc: subprocess.Popen[bytes]
    port: int
    sampler: cs.ProcSampler
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/alerts"


class Storm:
    """The cluster, the receiver, the acknowledger and the operators of one run."""

    def __init__(
        self, sim: simcluster.SimCluster, args: argparse.Namespace, workdir: pathlib.Path, tree: pathlib.Path | None
    ) -> None:
        self.sim, self.args, self.workdir = sim, args, workdir
        self.label = "before" if tree else "after"
        self.custom = kubernetes.client.CustomObjectsApi(sim.api)
        self.to_ack: set[tuple[str, str]] = set()
        self.acked: dict[tuple[str, str], float] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(4)
        self.pages = Pages(self.first_page)
        self.namespaces = [f"storm-{self.label}-{i}" for i in range(args.namespaces)]
        self.probe_ns = f"storm-{self.label}-probe"
        self.steady_ns = f"storm-{self.label}-steady"
        self.after = {ns: args.after + 6 * i for i, ns in enumerate(self.namespaces)}
        self.after |= {self.probe_ns: PROBE_AFTER, self.steady_ns: STEADY_AFTER}
        self.audit = cs.Audit(sim.audit_log)
        self.seq = 0
        self.expect: set[tuple[str, str]] = set()
        self.opened = 0
        self.env = {
            **os.environ,
            **RAISED,
            "KUBECONFIG": str(sim.kubeconfig),
            "ONCALL_NAMESPACE": "storm-operator",
            "ONCALL_TICK_SECONDS": str(args.tick),
            "ONCALL_PEERING_LIFETIME": str(args.peering_lifetime),
            "ONCALL_RECHECK_SECONDS": "3600",  # no re-checks of Mitigated OOM Incidents: there are none
        }
        if tree is not None:  # the older code first on the path: it shadows the installed package
            self.env["PYTHONPATH"] = os.pathsep.join([str(tree / "operator"), self.env.get("PYTHONPATH", "")])

    def setup(self) -> None:
        sim = self.sim
        for ns in self.after:
            sim.kubectl("create", "namespace", ns)
            sim.apply(handbook(f"http://127.0.0.1:{self.pages.port}/hook", self.after[ns]), ns)

    def close(self) -> None:
        self.pages.close()
        self.pool.shutdown()

    def teardown(self) -> None:
        """Delete this variant's Incidents so that the next variant starts with none open."""
        for ns in self.after:  # one DELETE of the collection per namespace, not one per Incident
            self.custom.delete_collection_namespaced_custom_object("oncall.dev", "v1alpha1", ns, "incidents")
        simcluster.wait(lambda: not self.incidents(list(self.after)), 600, "the variant's Incidents gone", every=2)

    def first_page(self, namespace: str, name: str) -> None:
        if (namespace, name) in self.to_ack:
            self.pool.submit(self.ack, namespace, name)

    def ack(self, namespace: str, name: str) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"status": {"phase": "Acknowledged", "acknowledgedBy": "bench", "acknowledgedAt": now}}
        self.custom.patch_namespaced_custom_object_status(
            "oncall.dev", "v1alpha1", namespace, "incidents", name, status
        )
        self.acked[(namespace, name)] = time.time()

    def start(self, label: str, ready: str = "configured: namespace") -> Operator:
        port = cs.floorlib_free_port()
        env = {**self.env, "ONCALL_HTTP_ADDRESS": f"127.0.0.1:{port}"}
        cmd = [sys.executable, "-m", "oncall_operator.cli", "run", "--peering", PEERING]
        t0 = time.time()
        proc = floorlib._start(cmd, env, self.workdir / f"{label}.log", ready, timeout=600)
        op = Operator(proc, port, cs.ProcSampler(proc.pid, every=0.5), t0)
        op.sampler.mark("start")
        return op

    def storm(self, op: Operator, count: int, namespaces: list[str], rate: float | None = None) -> dict[str, Any]:
        """Post ``count`` new alert groups spread over ``namespaces``; ack a share once paged.

        Returns the figures, and the Incidents opened that should page at level 2 (``self.expect``).
        """
        run = uuid.uuid4().hex[:6]
        bodies = [payload(namespaces[i % len(namespaces)], run, self.seq + i) for i in range(count)]
        self.seq += count
        sideline = self.probe_ns in namespaces or self.steady_ns in namespaces  # a probe or the steady phase
        every = round(1 / self.args.acked) if self.args.acked > 0 and not sideline else 0
        paging = set()
        for i, body in enumerate(bodies):
            if body["commonLabels"]["severity"] == "info":
                continue
            key = (body["commonLabels"]["namespace"], am.incident_name(am.parse(body)))
            if every and i % every == 0:
                self.to_ack.add(key)
            else:
                paging.add(key)
        profiling = self.args.profile and count >= 100 and not sideline
        profiler = None
        if profiling:
            (where := self.args.out / "storm-profiles").mkdir(parents=True, exist_ok=True)
            profiler = cs.start_profile(op.proc.pid, where, self.seq)
        cpu0 = op.sampler.read()
        posted = asyncio.run(post(op.url, bodies, rate or self.args.rate))
        cpu1 = op.sampler.read()
        if profiler is not None:  # py-spy (the bench extra) while the storm is posted: where an alert's CPU goes
            posted["profile"] = cs.stop_profile(profiler)
        opened: set[tuple[str, str]] = posted.pop("opened")
        self.expect = paging & opened

        def first_pages() -> bool:
            told = {(k[0], k[1]) for k in list(self.pages.at) if k[2] in ("page", "notify") and k[3] <= 1}
            return opened <= told

        simcluster.wait(first_pages, 120 + count / 20, "the storm's first pages", every=1)
        cpu = (cpu1[1] - cpu0[1]) if cpu0 and cpu1 else 0.0
        self.opened += len(opened)
        return {
            **posted,
            "alerts": count,
            "opened": len(opened),
            "level2_expected": len(self.expect),
            "operator_cpu_ms_per_alert": round(1000 * cpu / max(count, 1), 2),
        }

    def incidents(self, namespaces: list[str]) -> list[dict[str, Any]]:
        found = []
        for ns in namespaces:
            raw = self.custom.list_namespaced_custom_object(
                "oncall.dev", "v1alpha1", ns, "incidents", _preload_content=False
            )
            found += json.loads(raw.data)["items"]  # type: ignore[attr-defined]
        return found

    def lateness(self, namespaces: list[str], since: float) -> dict[str, Any]:
        """Each level-2 page that arrived for an Incident opened after ``since``, against its due time."""
        late, wrong = [], 0
        arrived = self.pages.level2(set(namespaces))
        for inc in self.incidents(namespaces):
            meta, esc = inc["metadata"], (inc.get("status") or {}).get("escalation") or {}
            key = (meta["namespace"], meta["name"])
            at = arrived.get(key)
            created = dt.datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00")).timestamp()
            if at is None or created < since - 1 or not esc.get("startedAt"):
                continue
            if key in self.acked and self.acked[key] < at:
                wrong += 1
            started = dt.datetime.fromisoformat(esc["startedAt"].replace("Z", "+00:00")).timestamp()
            late.append((at - (started + self.after[key[0]])) * 1000)
        out = {k: v for k, v in cs.summary(late).items() if k != "samples_ms"} if late else {"n": 0}
        return {**out, "pages_after_ack": wrong}

    def wait_due(self, namespaces: list[str], since: float) -> None:
        """Until the level-2 page of every Incident of the last storm that should page again went out."""
        last = since + max(self.after[n] for n in namespaces)

        def done() -> bool:
            return time.time() > last + 3 and self.expect <= set(self.pages.level2(set(namespaces)))

        simcluster.wait(done, self.args.after + 600, f"{len(self.expect)} level-2 pages", every=2)


def rss(op: Operator) -> float | None:
    sample = op.sampler.read()
    return round(sample[2], 1) if sample else None


def load() -> list[float]:
    return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]


def bench(
    sim: simcluster.SimCluster, args: argparse.Namespace, workdir: pathlib.Path, tree: pathlib.Path | None
) -> list[dict[str, Any]]:
    s = Storm(sim, args, workdir, tree)
    s.setup()
    leader = s.start(f"{s.label}-leader-0")
    sizes = []
    try:
        for n, size in enumerate(args.sizes):
            out: dict[str, Any] = {"open_incidents": size, "load_before": load()}
            since, scraped = time.time(), op_metrics.scrape(leader.port)
            out["storm"] = s.storm(leader, size - s.opened, s.namespaces)
            s.wait_due(s.namespaces, since)
            out["lateness"] = s.lateness(s.namespaces, since)
            out["lateness"]["waits"] = op_metrics.between(scraped, op_metrics.scrape(leader.port))
            # nothing is due now: what the loop costs per tick with ``size`` Incidents open
            window = s.audit.mark()
            time.sleep(args.quiet)
            quiet = s.audit.count(window, time.time(), max(1, round(args.quiet / args.tick)))
            mine = {k: v for k, v in quiet["requests"].items() if "kopfpeerings" not in k}  # keep-alives aside
            out["api_per_idle_tick"] = {
                "requests": round(sum(mine.values()), 2),
                "writes": round(sum(v for k, v in mine.items() if k.split()[0] in cs.STATE_WRITES), 2),
                "by_request": quiet["requests"],
            }
            if args.steady:  # pages due with ``size`` open and no storm on the API server
                since, scraped = time.time(), op_metrics.scrape(leader.port)
                out["steady"] = s.storm(leader, args.steady, [s.steady_ns], args.steady_rate)
                s.wait_due([s.steady_ns], since)
                out["steady"]["lateness"] = s.lateness([s.steady_ns], since)
                out["steady"]["lateness"]["waits"] = op_metrics.between(scraped, op_metrics.scrape(leader.port))
            out["leader_rss_mib"] = {
                "steady": rss(leader),
                "peak": leader.sampler.peak_mib(),
            }
            out["takeover"], leader = takeover(s, leader, n)
            out["load_after"] = load()
            sizes.append(out)
            print(json.dumps(out), flush=True)
    finally:
        floorlib._stop(leader.proc)
        s.close()
    if tree is not None:  # the next variant starts with none open
        s.teardown()
    return sizes


def probes(s: Storm, op: Operator, count: int = 6) -> float:
    """Open ``count`` probe Incidents and wait for their level-1 pages; the time their level 2 is first due."""
    before = len([k for k in s.pages.at if k[0] == s.probe_ns and k[3] == 1])
    t0 = time.time()
    s.storm(op, count, [s.probe_ns])
    simcluster.wait(
        lambda: len([k for k in s.pages.at if k[0] == s.probe_ns and k[3] == 1]) >= before + count,
        120,
        "probe level-1 pages",
    )
    return t0 + PROBE_AFTER


def first_probe_page(s: Storm, after: float, timeout: float = 300) -> float:
    def found() -> float | None:
        times = [t for t in s.pages.level2({s.probe_ns}).values() if t > after]
        return min(times) if times else None

    return float(simcluster.wait(found, timeout, "a probe's level-2 page", every=0.2))


def takeover(s: Storm, leader: Operator, n: int) -> tuple[dict[str, Any], Operator]:
    """A standby takes over from a frozen leader; then a fresh process starts after a graceful stop."""
    t0 = time.time()
    standby = s.start(f"{s.label}-standby-{n}")
    standby_ready = time.time() - t0
    out: dict[str, Any] = {"standby_start_s": round(standby_ready, 1)}
    out["standby_settle_s"] = cs.settle(standby.sampler, 600)
    probes(s, leader)
    frozen = time.time()
    os.kill(leader.proc.pid, signal.SIGSTOP)  # the leader's node went silent: no keep-alive, no page
    first = first_probe_page(s, frozen)
    os.kill(leader.proc.pid, signal.SIGKILL)
    os.kill(leader.proc.pid, signal.SIGCONT)
    leader.proc.wait()
    out |= {
        "standby_rss_mib": rss(standby),
        "takeover_first_due_page_s": round(first - frozen, 1),
        "peering_lifetime_s": s.args.peering_lifetime,
    }
    due = probes(s, standby)
    floorlib._stop(standby.proc)  # graceful: Kopf withdraws its peering record
    time.sleep(max(0.0, due - time.time()))
    fresh = s.start(f"{s.label}-leader-{n + 1}")
    out["restart_first_due_page_s"] = round(first_probe_page(s, fresh.started) - fresh.started, 1)
    out["restart_rss_mib"] = rss(fresh)
    out["restart_settle_s"] = cs.settle(fresh.sampler, 600)  # its listing of every open Incident done
    out["restart_settled_rss_mib"] = rss(fresh)  # what it keeps for them, without a storm's garbage
    return out, fresh


def setup_cluster(sim: simcluster.SimCluster) -> None:
    """The CRDs, Kopf's peering CRDs and the one ClusterKopfPeering every replica of the run joins."""
    sim.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    for crd in ("kopf.dev_clusterkopfpeerings.yaml", "kopf.dev_kopfpeerings.yaml"):
        sim.kubectl("apply", "--server-side", "-f", str(REPO / "deploy/helm/oncall-operator/crds" / crd))
    sim.apply([{"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}])
    sim.kubectl("create", "namespace", "storm-operator")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,5000,10000", help="open Incidents, comma-separated, growing")
    parser.add_argument("--rate", type=float, default=50.0, help="alerts per second while a storm is posted")
    parser.add_argument("--namespaces", type=int, default=10, help="namespaces the Incidents are spread over")
    parser.add_argument("--acked", type=float, default=0.2, help="share of paging Incidents acknowledged")
    parser.add_argument("--after", type=int, default=30, help="seconds to level 2 in the first namespace")
    parser.add_argument("--tick", type=float, default=5.0, help="the operators' ONCALL_TICK_SECONDS")
    parser.add_argument("--steady", type=int, default=300, help="alerts of the steady phase after each storm (0: none)")
    parser.add_argument("--steady-rate", type=float, default=5.0, help="alerts per second in the steady phase")
    parser.add_argument("--quiet", type=float, default=20.0, help="seconds of the idle window (API per tick)")
    parser.add_argument("--peering-lifetime", type=int, default=15, help="ONCALL_PEERING_LIFETIME (the chart's)")
    parser.add_argument("--profile", action="store_true", help="py-spy the leader while each storm is posted")
    parser.add_argument("--before", metavar="REF", help="also measure the operator at this git ref, first")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench" / "results")
    parser.add_argument("--workdir", type=pathlib.Path, help="the cluster's and the logs' directory")
    parser.add_argument("--hog", type=int, default=0, help="processes keeping a core busy beside it (bench/hog.py)")
    args = parser.parse_args()
    args.sizes = sorted(int(x) for x in args.sizes.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the operators and the cluster too
    results: dict[str, Any] = {
        **cs.run_header("storm.py"),
        "settings": {
            k: getattr(args, k)
            for k in ("rate", "namespaces", "acked", "after", "tick", "peering_lifetime", "hog", "steady")
        },
        "load_start": load(),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="storm-bench-") as tmp:
        workdir = args.workdir or pathlib.Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with simcluster.SimCluster(workdir) as sim, hog.running(args.hog):
            setup_cluster(sim)
            if args.before:
                tree, results["before"] = cs.checkout(args.before, workdir)
                results["before_sizes"] = bench(sim, args, workdir, tree)
            results["sizes"] = bench(sim, args, workdir, None)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["load_end"] = load()
    base = args.out / f"storm-{results['at']}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    base.with_suffix(".md").write_text(storm_report.markdown(results))
    print(f"wrote {base}.json and .md in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
