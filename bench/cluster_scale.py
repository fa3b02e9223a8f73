"""Benchmarks at cluster scale (issue 7): the figures docs/ARCHITECTURE.md sets targets for.

On a simulated cluster (bench/simcluster.py: the local control plane with kube-scheduler, and kwok
playing the kubelets of fake nodes) that grows through the sizes asked for (1k, 5k, 10k pods by
default), each size measures, with one operator process watching every pod of the cluster:

(a) OOM kill -> patched workload, p50/p95/p99, for the operator and for the floor in the same
    run. The floor is bench/oom_latency.py's bare client (list, watch pods, send the same JSON
    patch, nothing else), imported, not copied, with its Deployment shape, its watcher of patched
    Deployments and its percentile summary. The kill is made by kwok's stage (a label on the pod;
    kwok writes ``lastState.terminated`` OOMKilled/137 and ``restartCount`` 1 as a kubelet would).
    Latency runs from the moment the harness's own pod watch sees the kill to the moment its
    Deployment watch sees the raised limit, so kwok's reaction time is not counted for either.
(b) Alert intake -> Incident -> first notification at several rates (10, 50, 200 alerts/s):
    Alertmanager v4 payloads, one alert group each, posted with aiohttp to /api/v1/alerts; the
    first page arrives at the webhook receiver of tests/peers.py through an EscalationPolicy.
(c) The operator's peak memory (VmHWM from /proc) and CPU (utime+stime from /proc) at each size.
(d) API requests per remediation, from the API server's own ``apiserver_request_total``. That
    metric has no user-agent or user label, so requests are attributed by difference: the same
    number of kills is measured for the floor and for the operator, and everything else that
    runs (kwok, kube-controller-manager's rollouts, the scheduler, the harness) does the same work
    per kill in both windows; what the operator window has on top is the operator's. Writes to
    Pods must be zero: checked that way and, object by object, on the managedFields of every pod
    (no field manager ``oncall-operator`` or ``kopf``).

The figures are for notes (bench/results/*.json, a PNG chart and a markdown summary), never for
timed assertions. Run it with ``make bench`` (``BENCH_ARGS="--sizes 1000,5000"`` to choose).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):  # bench/ modules and tests.peers, however this file is run
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aiohttp  # noqa: E402
import kubernetes  # noqa: E402
import oom_latency as floorlib  # noqa: E402  (the other bench's floor and measurement helpers)
import scale_report  # noqa: E402
import simcluster  # noqa: E402
from aiohttp import test_utils, web  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests import peers  # noqa: E402

from oncall_operator.domain import alerts as am  # noqa: E402
from oncall_operator.domain import oom  # noqa: E402

CHUNK = 100  # filler pods per Deployment
KILL_WAIT = 60.0  # seconds a kill may take to be patched before the run fails
FIRST_KILL_WAIT = 300.0  # the first kill of a phase: a process that just started may still list 50,000 pods
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE"}
BACKGROUND = {"leases", "nodes", "events", "endpointslices", "endpoints", "subjectaccessreviews"}
OUR_MANAGERS = {"oncall-operator", "kopf"}
ALERT_NAME = "BenchAlert"


GUARDS_RAISED = {  # the storm guards (429 past 500 new Incidents per namespace) are not what the alert path measures
    "ONCALL_NEW_INCIDENTS_BURST": "1000000",
    "ONCALL_NEW_INCIDENTS_PER_MINUTE": "1000000",
    "ONCALL_MAX_OPEN_INCIDENTS_PER_NAMESPACE": "1000000",
}


# --- (a) OOM kills through kwok ---------------------------------------------------------------


def _killed_app(pod: dict[str, Any]) -> str | None:
    """The pod's app label (its Deployment) once kwok reports the OOM kill in its status."""
    app = (pod.get("metadata", {}).get("labels") or {}).get("app", "")
    return str(app) if app and oom.has_oom(pod.get("status")) else None


def oom_watch(api: kubernetes.client.ApiClient, namespace: str) -> floorlib.FirstSeen:
    """The harness's own watch on the pods it labelled for a kill: when each kill became visible."""
    core = kubernetes.client.CoreV1Api(api)
    return floorlib.FirstSeen(
        core.list_namespaced_pod, namespace, _killed_app, "OOM kill", label_selector=f"{simcluster.OOM_LABEL}=true"
    )


def kill(core: Any, namespace: str, pod: str) -> None:
    """Ask kwok for an OOM kill of ``pod`` (bench/kwok/stages.yaml, stage pod-container-oomkilled)."""
    meta = {
        "labels": {simcluster.OOM_LABEL: "true"},
        "annotations": {"bench.oncall.dev/oom-reason": "OOMKilled", "bench.oncall.dev/oom-exit-code": "137"},
    }
    core.patch_namespaced_pod(pod, namespace, {"metadata": meta})


def running_pod(core: Any, namespace: str, app: str) -> str | None:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}", field_selector="status.phase=Running")
    return str(pods.items[0].metadata.name) if pods.items else None


def measure_ooms(
    core: Any,
    deployments: floorlib.FirstSeen,
    kills: floorlib.FirstSeen,
    ns: str,
    names: list[str],
    warmup: int,
    gap: float,
) -> tuple[list[float], list[float]]:
    """Kill one pod per Deployment, one at a time; (latencies from the kill seen, from the label sent) in ms."""
    seen_ms, sent_ms = [], []
    for i, name in enumerate(names):
        pod = simcluster.wait(lambda n=name: running_pod(core, ns, n), 120, f"a Running pod of {name}")
        time.sleep(gap)  # let the previous remediation's writes and rollout pass: latency, not throughput
        sent = time.time()
        kill(core, ns, pod)
        patched = deployments.wait(name, FIRST_KILL_WAIT if i == 0 else KILL_WAIT)
        visible = kills.wait(name, 5)
        if i >= warmup:
            seen_ms.append((patched - visible) * 1000)
            sent_ms.append((patched - sent) * 1000)
    return seen_ms, sent_ms


def summary(ms: list[float]) -> dict[str, Any]:
    out = floorlib._summary(ms)  # n, p50, p90, p99, mean, max, samples: the other bench's definitions
    ordered = sorted(ms)
    out["p95_ms"] = round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)
    return out


# --- (c) the operator's own cost --------------------------------------------------------------


class ProcSampler:
    """Samples a process's CPU seconds and RSS from /proc every ``every`` seconds, with named marks."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, float]] = []  # (monotonic, cpu seconds, rss MiB)
        self.marks: dict[str, int] = {}
        self.stopped = False
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def read(self) -> tuple[float, float, float] | None:
        try:
            stat = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = pathlib.Path(f"/proc/{self.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        rss = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
        return time.monotonic(), (int(stat[11]) + int(stat[12])) / self.tick, rss / 1024

    def _run(self) -> None:
        while not self.stopped:
            if (sample := self.read()) is None:
                return
            self.samples.append(sample)
            time.sleep(self.every)

    def mark(self, name: str) -> None:
        if (sample := self.read()) is not None:
            self.samples.append(sample)
        self.marks[name] = len(self.samples) - 1

    def between(self, start: str, end: str) -> dict[str, float]:
        window = self.samples[self.marks[start] : self.marks[end] + 1]
        (t0, c0, _), (t1, c1, _) = window[0], window[-1]
        return {
            "seconds": round(t1 - t0, 1),
            "cpu_seconds": round(c1 - c0, 2),
            "cpu_cores_avg": round((c1 - c0) / max(t1 - t0, 1e-9), 3),
            "rss_mib_max": round(max(s[2] for s in window), 1),
        }

    def peak_mib(self) -> float:
        status = pathlib.Path(f"/proc/{self.pid}/status").read_text()
        return round(next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmHWM:")), 0) / 1024, 1)


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process, and of the whole machine (busy time, all cores)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[name] = (int(stat[11]) + int(stat[12])) / tick
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    out["machine"] = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
    return out


def cpu_split(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores each process used on average between two :func:`cpu_now` readings."""
    return {k: round((after[k] - before[k]) / max(seconds, 1e-9), 2) for k in after if k in before}


def settle(sampler: ProcSampler, timeout: float, quiet: float = 0.15) -> float:
    """Wait until the operator's CPU use over 2 s stays under ``quiet`` cores (its start-up listing is done)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        a = sampler.read()
        time.sleep(2)
        b = sampler.read()
        if a and b and (b[1] - a[1]) / (b[0] - a[0]) < quiet:
            break
    return round(time.monotonic() - t0, 1)


# --- (d) the API server's request counters ----------------------------------------------------


def api_requests(sim: simcluster.SimCluster) -> collections.Counter[str]:
    """``apiserver_request_total`` summed by verb, resource[/subresource] and dry run, from /metrics (admin cert)."""
    counts: collections.Counter[str] = collections.Counter()
    for family in text_string_to_metric_families(sim.kubectl("get", "--raw", "/metrics")):
        if family.name != "apiserver_request":
            continue
        for s in family.samples:
            if not s.name.endswith("_total") or not s.labels.get("resource"):
                continue
            res = s.labels["resource"] + (f"/{s.labels['subresource']}" if s.labels.get("subresource") else "")
            dry = " (dry-run)" if s.labels.get("dry_run") else ""
            counts[f"{s.labels['verb']} {res}{dry}"] += int(s.value)
    return counts


def per_kill(before: collections.Counter[str], after: collections.Counter[str], kills: int) -> dict[str, float]:
    delta = after.copy()
    delta.subtract(before)
    return {k: v / kills for k, v in delta.items() if v > 0}


def attribute(floor: dict[str, float], operator: dict[str, float], floor_own: dict[str, float]) -> dict[str, Any]:
    """The operator's requests per remediation: its window minus the floor's, plus what the floor itself sent."""
    extra = {}
    for key in sorted(set(floor) | set(operator)):
        resource = key.split()[1].split("/")[0]
        if resource in BACKGROUND and not key.startswith("POST events"):
            continue  # heartbeats, leases and the like scale with wall time, not with kills
        diff = operator.get(key, 0.0) - floor.get(key, 0.0) + floor_own.get(key, 0.0)
        if abs(diff) >= 0.05:
            extra[key] = round(diff, 2)
    writes = {k: v for k, v in extra.items() if k.split()[0] in WRITE_VERBS and "(dry-run)" not in k}
    pods = sum(v for k, v in writes.items() if k.split()[1].split("/")[0] == "pods")
    return {
        "requests_per_remediation": extra,
        "total_per_remediation": round(sum(extra.values()), 2),
        "writes_per_remediation": round(sum(writes.values()), 2),
        "dry_runs_per_remediation": round(sum(v for k, v in extra.items() if "(dry-run)" in k), 2),
        "pod_writes_per_remediation": round(pods, 2),
    }


OPERATOR_AGENTS = ("oncall-operator", "kopf/")
"""User agents of the operator's three clients: the official client and aiohttp (ours), and Kopf's."""
STATE_WRITES = {"create", "update", "patch", "delete", "deletecollection"}


class Audit:
    """The operator's own requests, read from the API server's audit log (bench/kwok/audit-policy.yaml).

    Exact where ``apiserver_request_total`` can only be attributed by difference: every request
    carries its client's user agent and its answer's code. A window is a byte offset into the log
    and a wall-clock interval; the log is written in batches, so reading waits for a flush.
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def mark(self) -> tuple[int, float]:
        return (self.path.stat().st_size if self.path.exists() else 0), time.time()

    def count(self, since: tuple[int, float], until: float, per: int) -> dict[str, Any]:
        time.sleep(2.5)  # --audit-log-batch-max-wait=1s: let the window's last batch reach the file
        counts: collections.Counter[str] = collections.Counter()
        server_ms: collections.defaultdict[str, list[float]] = collections.defaultdict(list)
        with self.path.open("rb") as log:
            log.seek(since[0])
            for line in log:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS):
                    continue
                at = dt.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
                if not since[1] <= at <= until:
                    continue
                ref = event.get("objectRef") or {}
                what = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                dry = " (dry-run)" if "dryRun=All" in event.get("requestURI", "") else ""
                code = int((event.get("responseStatus") or {}).get("code") or 0)
                counts[f"{event['verb']} {what}{dry} {code}"] += 1
                done = dt.datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00")).timestamp()
                server_ms[f"{event['verb']} {what}{dry}"].append((done - at) * 1000)
        per = max(per, 1)

        def total(keep: Any) -> float:
            return round(sum(n for k, n in counts.items() if keep(*k.split(" ", 1))) / per, 2)

        def ok_write(verb: str, rest: str) -> bool:
            return verb in STATE_WRITES and "(dry-run)" not in rest and int(rest.rsplit(" ", 1)[1]) < 400

        return {
            "requests": {k: round(n / per, 2) for k, n in sorted(counts.items())},
            # how long the API server took over each kind of request (received -> answered), p50:
            # which leg of a remediation is slow, apart from the client's own time
            "server_ms_p50": {k: round(sorted(v)[len(v) // 2], 1) for k, v in sorted(server_ms.items())},
            "requests_total": total(lambda verb, rest: True),
            "writes": total(lambda verb, rest: ok_write(verb, rest) and not rest.startswith("events")),
            "events": total(lambda verb, rest: ok_write(verb, rest) and rest.startswith("events")),
            "dry_runs": total(lambda verb, rest: "(dry-run)" in rest),
            "refused": total(lambda verb, rest: int(rest.rsplit(" ", 1)[1]) >= 400),
            # any attempt counts here, answered or refused; a dry-run writes nothing
            "pod_writes": total(
                lambda verb, rest: verb in STATE_WRITES and rest.startswith("pods") and "(dry-run)" not in rest
            ),
        }


def pod_managers(core: Any, namespace: str) -> dict[str, int]:
    """Field managers that ever wrote each pod of ``namespace``, with the number of pods."""
    raw = core.list_namespaced_pod(namespace, _preload_content=False)
    found: collections.Counter[str] = collections.Counter()
    for pod in json.loads(raw.data)["items"]:
        for manager in {m.get("manager", "") for m in pod["metadata"].get("managedFields") or []}:
            found[manager] += 1
    return dict(found)


# --- (b) alerts -> Incident -> first notification --------------------------------------------


class Receiver:
    """tests/peers.py's receivers on a thread's event loop, noting when each Incident's first page arrived."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        ref: list[peers.Peer] = []
        app = peers.build_app(ref)

        @web.middleware
        async def stamp(request: web.Request, handler: Any) -> web.StreamResponse:
            now = time.time()
            if request.path.startswith("/hook/"):
                with_body = await request.json()
                name = ((with_body or {}).get("incident") or {}).get("name")
                if name and with_body.get("kind") == "page":
                    self.first.setdefault(name, now)
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(stamp)
        self.server = test_utils.TestServer(app, host="127.0.0.1")
        ref.append(peers.Peer(self.server))
        self.peer = ref[0]

    def __enter__(self) -> Receiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start_server(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def handbook(namespace: str, hook_url: str) -> list[dict[str, Any]]:
    """A webhook-only EscalationPolicy paging at once, a Runbook for the bench alert, one for OOM kills."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "hook", "labels": {"oncall.dev/notifier": "true"}},
            "stringData": {"url": hook_url},
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "bench"},
            "spec": {
                "ackTimeout": "1h",
                "levels": [{"name": "l1", "after": "0", "targets": [{"user": "Ada"}], "channels": ["hook"]}],
                "channels": [{"name": "hook", "type": "Webhook", "secretRef": {"name": "hook", "key": "url"}}],
                "severities": [{"severity": "critical", "response": "Page", "channels": ["hook"]}],
            },
        },
        {
            "apiVersion": "oncall.dev/v1alpha1",
            "kind": "Runbook",
            "metadata": {"name": "bench-alert"},
            "spec": {
                "trigger": {"alertName": ALERT_NAME},
                "severity": "critical",
                "escalationPolicyRef": {"name": "bench"},
                "steps": [{"title": "Look"}],
            },
        },
        floorlib.OOM_RUNBOOK,
    ]


def alert_payload(namespace: str, run: str, seq: int) -> dict[str, Any]:
    """An Alertmanager webhook v4 body with one firing alert, its own alert group."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    labels = {"alertname": ALERT_NAME, "severity": "critical", "namespace": namespace, "run": run, "seq": str(seq)}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{ALERT_NAME}", run="{run}", seq="{seq}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": ALERT_NAME, "run": run, "seq": str(seq)},
        "commonLabels": labels,
        "commonAnnotations": {"summary": f"bench alert {run}/{seq}"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"bench alert {run}/{seq}"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": am.fingerprint(labels),
            }
        ],
    }


async def post_alerts(url: str, namespace: str, rate: float, count: int) -> dict[str, Any]:
    """Post ``count`` alert groups at ``rate``/s, open loop (each on its own schedule, not after the last answer)."""
    run = uuid.uuid4().hex[:6]
    sent: dict[str, float] = {}
    answers: list[tuple[int, float]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(seq: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            body = alert_payload(namespace, run, seq)
            sent[am.incident_name(am.parse(body))] = time.time()
            t0 = time.monotonic()
            try:
                async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=60)) as reply:
                    await reply.read()
                    answers.append((reply.status, (time.monotonic() - t0) * 1000))
            except (aiohttp.ClientError, TimeoutError):
                answers.append((0, (time.monotonic() - t0) * 1000))

        start = time.monotonic() + 0.2
        await asyncio.gather(*(one(i, start + i / rate) for i in range(count)))
        achieved = count / max(time.monotonic() - start, 1e-9)
    codes = collections.Counter(str(code) for code, _ in answers)
    return {"sent": sent, "codes": dict(codes), "intake_ms": [ms for _, ms in answers], "achieved_rate": achieved}


def alert_scenario(url: str, namespace: str, receiver: Receiver, rate: float, seconds: float) -> dict[str, Any]:
    count = max(1, round(rate * seconds))
    posted = asyncio.run(post_alerts(url, namespace, rate, count))
    sent: dict[str, float] = posted["sent"]
    deadline = time.monotonic() + 60 + seconds
    while time.monotonic() < deadline and not all(n in receiver.first for n in sent):
        time.sleep(0.2)
    latencies = [(receiver.first[n] - t) * 1000 for n, t in sent.items() if n in receiver.first]
    result: dict[str, Any] = {
        "rate": rate,
        "alerts": count,
        "achieved_rate": round(posted["achieved_rate"], 1),
        "codes": posted["codes"],
        "notified": len(latencies),
        "missing": count - len(latencies),
        "intake": {k: v for k, v in summary(posted["intake_ms"]).items() if k != "samples_ms"},
    }
    if latencies:
        result["first_notification"] = {k: v for k, v in summary(latencies).items() if k != "samples_ms"}
    return result


# --- one size -----------------------------------------------------------------------------------


def plane_pids(sim: simcluster.SimCluster) -> dict[str, int]:
    """The simulated cluster's processes by name (etcd, the control plane, kwok)."""
    pids = {r.name: r.pid for r in sim.plane.state.processes}
    if sim.kwok is not None:
        pids["kwok"] = sim.kwok.pid
    return pids


def filler(name: str, replicas: int, node: str | None) -> dict[str, Any]:
    """A filler Deployment; with ``node``, its pods are made bound to that node (no scheduler)."""
    obj = floorlib._deployment(name, replicas)
    if node is not None:
        obj["spec"]["template"]["spec"]["nodeName"] = node
    return obj


def grow(
    sim: simcluster.SimCluster, ns: str, pods: int, targets: list[str], have: int, pin: bool = True
) -> dict[str, Any]:
    """Add filler Deployments (CHUNK pods each) and the target Deployments until ``pods`` pods run.

    With ``pin``, the filler pods are created bound to a node (``nodeName``, FILL of each node's
    room, in order), as a DaemonSet's or a static pod is: the scheduler's binding and its Scheduled
    Event are two of the four API writes a pod costs, on a machine where the API server is the
    busiest process. The Deployments measured (``targets``) always go through the scheduler.

    Returns how long it took (the apply alone, and until every pod was Ready) and the cores each
    process of the cluster used meanwhile: what limits growth is whichever is saturated.
    """
    t0 = time.monotonic()
    sim.nodes(pods)
    pids = plane_pids(sim) | {"harness": os.getpid()}
    cpu0, t_cpu = cpu_now(pids), time.monotonic()
    filler_pods = max(0, pods - len(targets) - have)
    start = have // CHUNK
    objs = [
        filler(
            f"fill-{start + i}",
            min(CHUNK, filler_pods - i * CHUNK),
            sim.node_for((start + i) * CHUNK) if pin else None,
        )
        for i in range((filler_pods + CHUNK - 1) // CHUNK)
    ]
    objs += [floorlib._deployment(name, 1) for name in targets]
    for i in range(0, len(objs), 50):
        sim.apply(objs[i : i + 50], ns)
    applied = time.monotonic()
    want = have + filler_pods + len(targets)
    simcluster.wait(lambda: sim.ready_replicas(ns) >= want, 3600, f"{want} Running pods", every=3)
    waited = time.monotonic() - t_cpu
    drained = quiet_plane(pids)
    return {
        "seconds": round(time.monotonic() - t0, 1),
        "apply_seconds": round(applied - t_cpu, 1),
        "pods_added": want - have,
        "fillers_pinned": pin,
        "pods_per_s": round((want - have) / max(waited, 1e-9), 1),
        "cpu_cores": cpu_split(cpu0, cpu_now(pids), waited),
        "load_after": os.getloadavg()[0],
        "drain_seconds": drained,
    }


def quiet_plane(pids: dict[str, int], timeout: float = 900, quiet: float = 0.15) -> float:
    """Wait until kwok uses under ``quiet`` cores over 5 s (its node heartbeats only); the seconds it took.

    Deployments count every pod Ready before kwok has played its last stages (at 50,000 pods it was
    still patching pod statuses a minute later), and a kill's own stage waits behind that queue: a
    kill measured then measures kwok's backlog, not the operator.
    """
    watched = {k: v for k, v in pids.items() if k == "kwok"}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        a, ta = cpu_now(watched), time.monotonic()
        time.sleep(5)
        used = cpu_split(a, cpu_now(watched), time.monotonic() - ta)
        used.pop("machine", None)  # the whole machine's: a CPU hog beside the bench (--hog) keeps it over a core
        if all(v < quiet for v in used.values()):
            break
    return round(time.monotonic() - t0, 1)


def bench_size(
    sim: simcluster.SimCluster,
    ns: str,
    pods: int,
    have: int,
    args: argparse.Namespace,
    workdir: pathlib.Path,
    result: dict[str, Any],
) -> int:
    """Grow to ``pods`` and measure; fills ``result`` as it goes (growth first); the pods Running."""
    api = sim.api
    core = kubernetes.client.CoreV1Api(api)
    per_phase = args.samples + args.warmup
    tag = f"s{pods}"
    phases = ("floor", "op", "before") if args.before_tree else ("floor", "op")
    targets = {p: [f"t-{tag}-{p}-{i}" for i in range(per_phase)] for p in phases}
    load = os.getloadavg()[0]
    growth = grow(sim, ns, pods, [t for p in phases for t in targets[p]], have, not args.schedule_fillers)
    growth["load_before"] = load
    running = sim.ready_replicas(ns)
    print(
        f"[{pods}] {running} pods Running on {sim.node_count} kwok nodes after {growth['seconds']}s "
        f"({growth['pods_per_s']} pods/s; cores {growth['cpu_cores']})",
        flush=True,
    )
    result.update({"pods": running, "nodes": sim.node_count, "grow_seconds": growth["seconds"], "grow": growth})
    if args.grow_only:
        return running
    watches = (floorlib.deployment_watch(api, ns), oom_watch(api, ns))
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig)}

    # the floor: oom_latency.py's bare client, in its own process, watching every pod of the cluster
    t0 = time.monotonic()
    cmd = [
        sys.executable,
        floorlib.__file__,
        "floor",
        "--kubeconfig",
        str(sim.kubeconfig),
        "--prefix",
        f"t-{tag}-floor-",
    ]
    floor_proc = floorlib._start(cmd, env, workdir / f"floor-{pods}.log", "ready", timeout=300)
    floor_start = time.monotonic() - t0
    try:
        before = api_requests(sim)
        seen, sent = measure_ooms(core, *watches, ns, targets["floor"], args.warmup, args.gap)
        floor_calls = per_kill(before, api_requests(sim), per_phase)
        result["floor"] = {
            **summary(seen),
            "from_label_ms": summary(sent)["p50_ms"],
            "startup_s": round(floor_start, 1),
        }
        result["floor"].update(floorlib._memory(floor_proc.pid))
    finally:
        floorlib._stop(floor_proc)
    print(f"[{pods}] floor p50 {result['floor']['p50_ms']} p99 {result['floor']['p99_ms']} ms", flush=True)

    with Receiver() as receiver:
        sim.apply(handbook(ns, receiver.peer.url("/hook/ok")), ns)
        phase = Phase(sim, ns, pods, args, workdir, env, receiver, watches, floor_calls)
        result.update(phase.run("operator", targets["op"], None, profile=args.profile and pods == max(args.sizes)))
        if args.before_tree:  # the operator as it was at --before, same cluster, same floor
            # with its own CRDs: the API server then prunes and defaults the objects as that
            # operator's models expect (today's defaulted fields would fail its extra=forbid)
            sim.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(args.before_tree / "crds"))
            try:
                profile = args.profile and pods == max(args.sizes)
                result["before"] = phase.run("before", targets["before"], args.before_tree, profile=profile)
            finally:
                sim.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for w in watches:
        w.stop = True
    for who in (result, result.get("before")):
        if who:
            for p in ("p50", "p95", "p99"):
                who[f"ratio_{p}"] = round(who["operator"][f"{p}_ms"] / max(result["floor"][f"{p}_ms"], 0.1), 2)
    return running


@dataclasses.dataclass
class Phase:
    """One operator process measured on one size: OOM kills, API requests, alerts, memory and CPU."""

    sim: simcluster.SimCluster
    ns: str
    pods: int
    args: argparse.Namespace
    workdir: pathlib.Path
    env: dict[str, str]
    receiver: Receiver
    watches: tuple[floorlib.FirstSeen, floorlib.FirstSeen]
    floor_calls: dict[str, float]

    def run(self, label: str, names: list[str], tree: pathlib.Path | None, profile: bool) -> dict[str, Any]:
        sim, ns, pods, args = self.sim, self.ns, self.pods, self.args
        core = kubernetes.client.CoreV1Api(sim.api)
        port = floorlib_free_port()
        op_env = {**self.env, "ONCALL_NAMESPACE": ns, "ONCALL_HTTP_ADDRESS": f"127.0.0.1:{port}"}
        if not args.keep_guards:  # 200 alerts/s of new groups in one namespace: the path, not the 429s
            op_env |= GUARDS_RAISED
        if tree is not None:  # the older code first on the path: it shadows the installed package
            op_env["PYTHONPATH"] = os.pathsep.join([str(tree / "operator"), op_env.get("PYTHONPATH", "")])
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "oncall_operator.cli", "run"]
        if args.variant != "baseline" and tree is None:  # one Kopf setting changed, for before/after figures
            cmd = [sys.executable, str(REPO / "bench" / "operator_variants.py"), args.variant, "run"]
        log = self.workdir / f"{label}-{pods}.log"
        proc = floorlib._start(cmd, op_env, log, "configured: namespace", timeout=300)
        sampler = ProcSampler(proc.pid)
        sampler.mark("start")
        profiler = None
        result: dict[str, Any] = {}
        try:
            settled = settle(sampler, 300)
            sampler.mark("settled")
            result["operator_startup_s"] = round(time.monotonic() - t0, 1)
            result["operator_settle_s"] = settled
            if profile:
                profiler = start_profile(proc.pid, args.out, f"{label}-{pods}")
            before, audit, window = api_requests(sim), Audit(sim.audit_log), Audit(sim.audit_log).mark()
            per_phase = len(names)
            seen, sent = measure_ooms(core, *self.watches, ns, names, args.warmup, args.gap)
            op_calls = per_kill(before, api_requests(sim), per_phase)
            oom_until = time.time()
            sampler.mark("oom-done")
            result["operator"] = {**summary(seen), "from_label_ms": summary(sent)["p50_ms"]}
            print(
                f"[{pods}] {label} p50 {result['operator']['p50_ms']} p99 {result['operator']['p99_ms']} ms",
                flush=True,
            )
            floor_own = {"PATCH deployments": 1.0}  # oom_latency.floor sends one patch per kill and nothing else
            result["api"] = attribute(self.floor_calls, op_calls, floor_own)
            result["api"]["raw_floor_per_kill"] = {k: round(v, 2) for k, v in sorted(self.floor_calls.items())}
            result["api"]["raw_operator_per_kill"] = {k: round(v, 2) for k, v in sorted(op_calls.items())}
            result["api"]["audit_per_remediation"] = audit.count(window, oom_until, per_phase)
            managers = pod_managers(core, ns)
            result["pod_field_managers"] = managers
            result["pod_writes_by_operator_objects"] = sum(v for k, v in managers.items() if k in OUR_MANAGERS)
            alerts = []
            for rate in args.alert_rates:
                url = f"http://127.0.0.1:{port}/api/v1/alerts"
                window = audit.mark()
                pids = plane_pids(sim) | {"operator": proc.pid, "harness": os.getpid()}
                cpu0, t_cpu = cpu_now(pids), time.monotonic()
                a = alert_scenario(url, ns, self.receiver, rate, args.alert_seconds)
                a["cpu_cores"] = cpu_split(cpu0, cpu_now(pids), time.monotonic() - t_cpu)
                a["audit_per_alert"] = audit.count(window, time.time(), a["alerts"])
                alerts.append(a)
                fn = a.get("first_notification", {})
                print(
                    f"[{pods}] {label} alerts {rate}/s: first page p50 {fn.get('p50_ms')} p99 {fn.get('p99_ms')} ms, "
                    f"{a['missing']} missing, codes {a['codes']}",
                    flush=True,
                )
            result["alerts"] = alerts
            sampler.mark("alerts-done")
            if profiler is not None:
                result["profile"] = stop_profile(profiler)
                profiler = None
            # clear the Incidents while the operator runs (an older operator put its finalizer on
            # them), so the next phase does not start with this one's backlog
            sim.kubectl("delete", "incidents", "--all", "-n", ns, "--wait=false")
            t_clear = time.monotonic()
            with contextlib.suppress(TimeoutError):
                simcluster.wait(lambda: not sim.kubectl("get", "incidents", "-n", ns, "-o", "name"), 300, "", every=2)
            result["incidents_cleared_s"] = round(time.monotonic() - t_clear, 1)
        finally:
            if profiler is not None:
                stop_profile(profiler)
            result.setdefault("operator", {})
            result["operator"]["peak_rss_mib"] = sampler.peak_mib() if proc.poll() is None else None
            sampler.stopped = True
            floorlib._stop(proc)
        result["operator"]["cpu"] = {
            "startup": sampler.between("start", "settled"),
            "oom": sampler.between("settled", "oom-done"),
            "alerts": sampler.between("oom-done", "alerts-done"),
        }
        result["operator"]["rss_mib_steady"] = sampler.between("settled", "oom-done")["rss_mib_max"]
        return result


def checkout(ref: str, workdir: pathlib.Path) -> tuple[pathlib.Path, str]:
    """The operator's code at ``ref`` (git archive into ``workdir``), and the commit it names."""
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run(
        [*git, "rev-parse", "--verify", f"{ref}^{{commit}}"], check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = workdir / f"before-{commit[:12]}"
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "operator", "crds"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree, commit


def floorlib_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- profiling (py-spy) --------------------------------------------------------------------------


def start_profile(pid: int, out: pathlib.Path, tag: str) -> tuple[subprocess.Popen[bytes], pathlib.Path]:
    spy = pathlib.Path(sys.executable).parent / "py-spy"
    path = out / f"profile-{tag}.txt"
    cmd = [str(spy), "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "--output", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, path


def stop_profile(handle: tuple[subprocess.Popen[bytes], pathlib.Path]) -> dict[str, Any]:
    proc, path = handle
    proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        simcluster.stop(proc)
    return top_costs(path) if path.exists() else {"error": "py-spy wrote nothing"}


def top_costs(path: pathlib.Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks -> the frames with the most samples, inclusive and self."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        count = int(n)
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count

    def pct(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * v / max(total, 1), 1)) for f, v in c.most_common(top)]

    return {"file": str(path), "samples": total, "inclusive_pct": pct(inclusive), "self_pct": pct(own)}


def run_header(script: str) -> dict[str, Any]:
    """What every bench's results start with: when (also the files' stamp), the exact command, the commit, the cores."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return {
        "at": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "command": " ".join(["python", f"bench/{script}", *sys.argv[1:]]),
        "commit": commit.stdout.strip(),
        "cores": os.cpu_count(),
    }


def _stopped(*_: object) -> None:
    """SIGTERM: leave through the context managers, which stop the operators and the cluster (once: a second
    SIGTERM must not cut that teardown short)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(143)


def main() -> int:
    signal.signal(signal.SIGTERM, _stopped)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,5000,10000", help="pods in the cluster, comma-separated, growing")
    parser.add_argument("--samples", type=int, default=30, help="kills per phase (floor, operator) and size")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two kills")
    parser.add_argument("--alert-rates", default="10,50,200", help="alerts per second, comma-separated")
    parser.add_argument("--alert-seconds", type=float, default=5.0, help="how long each rate is posted")
    parser.add_argument("--profile", action="store_true", help="py-spy both operators at the largest size")
    parser.add_argument("--variant", default="baseline", help="bench/operator_variants.py: the operator with a fix")
    parser.add_argument(
        "--before", metavar="REF", help="also measure the operator at this git ref (before/after in one run)"
    )
    parser.add_argument(
        "--grow-only", action="store_true", help="only grow the cluster through the sizes: time and cores per process"
    )
    parser.add_argument(
        "--schedule-fillers",
        action="store_true",
        help="let kube-scheduler place the filler pods too (default: made bound to their node)",
    )
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--keep-guards", action="store_true", help="keep the new-Incident rate limit and cap (default: raised)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench" / "results")
    parser.add_argument("--logs", type=pathlib.Path, help="keep the operator's, the floor's and kwok's logs here")
    parser.add_argument(
        "--workdir", type=pathlib.Path, help="the cluster's and the logs' directory (default: a temp dir)"
    )
    args = parser.parse_args()
    args.sizes = sorted(int(x) for x in args.sizes.split(","))
    args.alert_rates = [float(x) for x in args.alert_rates.split(",") if x]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        **run_header("cluster_scale.py"),
        "kwok": simcluster.kwok_version(),
        "samples": args.samples,
        "warmup": args.warmup,
        "gap_s": args.gap,
        "variant": args.variant,
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        workdir = args.workdir or pathlib.Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        args.before_tree = None
        if args.before:
            args.before_tree, results["before"] = checkout(args.before, workdir)
        try:
            with simcluster.SimCluster(workdir, unlimited=True) as sim:
                results["cluster_startup_s"] = sim.startup_s
                ns = f"bench-scale-{uuid.uuid4().hex[:6]}"
                sim.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
                sim.kubectl("create", "namespace", ns)
                have = 0
                for pods in args.sizes:
                    t0 = time.monotonic()
                    size: dict[str, Any] = {"pods": pods}
                    results["sizes"].append(size)
                    try:
                        have = bench_size(sim, ns, pods, have, args, workdir, size)
                    except BaseException as error:
                        size["error"] = repr(error)
                        raise
                    finally:
                        size["seconds"] = round(time.monotonic() - t0, 1)
                        # what was measured (the growth, earlier sizes) survives a size that fails
                        partial = args.out / f"cluster_scale-{results['at']}-partial.json"
                        partial.write_text(json.dumps(results, indent=2) + "\n")
                    print(f"[{pods}] done in {size['seconds']} s", flush=True)
        finally:
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in workdir.glob("*.log"):
                    (args.logs / log.name).write_text(log.read_text())
    results["seconds"] = round(time.monotonic() - started, 1)
    base = args.out / f"cluster_scale-{results['at']}{'' if args.variant == 'baseline' else '-' + args.variant}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"cluster_scale-{results['at']}-partial.json").unlink(missing_ok=True)
    base.with_suffix(".md").write_text(scale_report.markdown(results))
    chart = not (args.no_chart or args.grow_only)
    if chart:
        scale_report.chart(results, base.with_suffix(".png"))
    print(f"wrote {base}.json, .md{', .png' if chart else ''} in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
