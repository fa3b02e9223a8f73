"""OOM kill -> patched workload latency, for the operator and for the floor, in one run.

docs/ARCHITECTURE.md ("Targets") sets the target relative to a floor measured in the same run: a bare
client that watches pods and sends the same JSON patch, with nothing else (no owner lookup,
no runbook, no guardrails, no dry-runs, no Incident). Both are measured the same way, from
outside: the harness writes an OOM kill into a pod's status (as the kubelet would) and takes
the time when its own watch on Deployments sees the raised limit. The watch load is real: N
pods made by Deployments on the local control plane (Pending for ever, as there is no kubelet;
what matters is that both watchers list and watch all of them).

    python bench/oom_latency.py [--pods 1000] [--samples 30] [--kubeconfig PATH]

Without --kubeconfig it starts its own control plane. Results go to bench/results/ as JSON;
the figures are for notes, never for timed assertions.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import pathlib
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import kubernetes

from oncall_operator import devcluster
from oncall_operator.domain import oom

REPO = pathlib.Path(__file__).resolve().parents[1]
LIMIT, RAISED = "100Mi", "200Mi"
CHUNK = 100  # filler pods per Deployment
OOM_RUNBOOK: dict[str, Any] = {
    "apiVersion": "oncall.dev/v1alpha1",
    "kind": "Runbook",
    "metadata": {"name": "bench"},
    "spec": {
        "trigger": {"event": "OOMKilled"},
        "actions": [{"name": "raise", "type": "raiseMemoryLimit", "raiseMemoryLimit": {"maxLimit": "1Gi"}}],
        "guardrails": {"cooldown": "0"},
    },
}
"""The Runbook both benches give the operator: raise the limit of every OOM-killed container, no cooldown."""


def _ops(key: str) -> list[dict[str, Any]]:
    """The operator's patch for the bench's Deployments (see domain.remediation), byte for byte."""
    path = "/spec/template/spec/containers/0"
    return [
        {"op": "test", "path": f"{path}/name", "value": "app"},
        {"op": "test", "path": f"{path}/resources/limits/memory", "value": LIMIT},
        {"op": "replace", "path": f"{path}/resources/limits/memory", "value": RAISED},
        {"op": "add", "path": "/metadata/annotations/oncall.dev~1remediated-kill", "value": key},
    ]


# --- the floor: watch pods, patch, nothing else ----------------------------------------------


async def floor(kubeconfig: str, prefix: str) -> None:
    import aiohttp

    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    assert cfg.cert_file, "the floor authenticates with the admin client certificate"
    context.load_cert_chain(cfg.cert_file, cfg.key_file)
    done: set[str] = set()
    async with aiohttp.ClientSession(base_url=cfg.host, connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with http.get("/api/v1/pods", params={"limit": "5000"}) as listing:
            version = (await listing.json())["metadata"]["resourceVersion"]
        print("ready", flush=True)
        params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "3600"}
        async with http.get("/api/v1/pods", params=params, timeout=aiohttp.ClientTimeout(total=None)) as stream:
            async for line in stream.content:
                pod = json.loads(line)["object"]
                if not oom.has_oom(pod.get("status")):
                    continue
                facts = oom.read_pod(pod)
                owner = facts.owner
                if owner is None or not owner.name.startswith(prefix):
                    continue
                name = owner.name.rsplit("-", 1)[0]  # ReplicaSet web-<hash> -> Deployment web
                if name in done:
                    continue
                done.add(name)
                url = f"/apis/apps/v1/namespaces/{facts.namespace}/deployments/{name}"
                headers = {"Content-Type": "application/json-patch+json"}
                async with http.patch(url, data=json.dumps(_ops(facts.kills[-1].key)), headers=headers) as reply:
                    await reply.read()


# --- the harness -------------------------------------------------------------------------------


class FirstSeen:
    """A watch in a thread that notes when each key first showed up: the harness's own clock.

    ``key`` maps a watched object (the raw dict) to the key it stands for, or None while it does
    not count yet. A watch the server cuts is simply started again.
    """

    def __init__(
        self,
        list_call: Callable[..., Any],
        namespace: str,
        key: Callable[[dict[str, Any]], str | None],
        what: str,
        **params: Any,
    ) -> None:
        self.list_call, self.namespace, self.key, self.what, self.params = list_call, namespace, key, what, params
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            try:
                self._watch()
            except Exception as error:  # a watch cut by the server, or the control plane going away
                if not self.stop:
                    print(f"{self.what} watch restarted: {error!r}", flush=True)
                    time.sleep(0.2)

    def _watch(self) -> None:
        w = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        for event in w.stream(self.list_call, self.namespace, timeout_seconds=60, **self.params):  # type: ignore[no-untyped-call]
            found = self.key(event["raw_object"])
            if found and found not in self.seen:
                with self.changed:
                    self.seen[found] = time.time()
                    self.changed.notify_all()
            if self.stop:
                return

    def wait(self, key: str, timeout: float = 60) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.seen, timeout):
                raise TimeoutError(f"{self.what}: {key} not seen within {timeout}s")
            return self.seen[key]


def raised(deployment: dict[str, Any]) -> str | None:
    """The Deployment's name once its first container's memory limit is RAISED."""
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    limit = ((containers[0].get("resources") or {}).get("limits") or {}).get("memory")
    return str(deployment["metadata"]["name"]) if limit == RAISED else None


def deployment_watch(api: kubernetes.client.ApiClient, namespace: str) -> FirstSeen:
    """Watches the bench's Deployments and notes when each one's limit became RAISED."""
    return FirstSeen(kubernetes.client.AppsV1Api(api).list_namespaced_deployment, namespace, raised, "deployment patch")


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "registry.invalid/app:1", "resources": {"limits": {"memory": LIMIT}}}
                    ]
                },
            },
        },
    }


def _kill(core: Any, namespace: str, pod: dict[str, Any]) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    term = {"reason": "OOMKilled", "exitCode": 137, "startedAt": now, "finishedAt": now}
    status = {
        "name": "app",
        "image": "registry.invalid/app:1",
        "imageID": "",
        "ready": False,
        "restartCount": 1,
        "state": {"running": {"startedAt": now}},
        "lastState": {"terminated": term},
    }
    core.patch_namespaced_pod_status(pod["metadata"]["name"], namespace, {"status": {"containerStatuses": [status]}})


def _pods(core: Any, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    raw = core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
    return list(json.loads(raw.data)["items"])


def _wait(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.5)
    raise TimeoutError(what)


def _measure(core: Any, obs: FirstSeen, namespace: str, names: list[str], warmup: int, gap: float) -> list[float]:
    """Kill one pod per Deployment, one at a time, ``gap`` seconds apart (latency, not throughput)."""
    latencies = []
    for i, name in enumerate(names):
        [pod] = _wait(lambda n=name: _pods(core, namespace, f"app={n}"), 60, f"pod of {name}")
        time.sleep(gap)  # let the previous remediation's Incident write and its reactions pass
        start = time.time()
        _kill(core, namespace, pod)
        latency = obs.wait(name) - start
        if i >= warmup:
            latencies.append(latency * 1000)
    return latencies


def _summary(ms: list[float]) -> dict[str, Any]:
    ordered = sorted(ms)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)

    return {
        "n": len(ms),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(max(ms), 1),
        "samples_ms": [round(x, 1) for x in ms],
    }


def _memory(pid: int) -> dict[str, float]:
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": fields.get("VmRSS", 0.0), "peak_rss_mib": fields.get("VmHWM", 0.0)}


def _start(cmd: list[str], env: dict[str, str], log: pathlib.Path, ready: str, timeout: float = 120) -> Any:
    out = log.open("w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _wait(lambda: proc.poll() is not None or ready in log.read_text(), timeout, f"{cmd[1:3]} start-up")
    if proc.poll() is not None:
        raise RuntimeError(f"{' '.join(cmd)} exited:\n{log.read_text()[-3000:]}")
    return proc


def _stop(proc: Any) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run(
    kubeconfig: pathlib.Path, pods: int, samples: int, warmup: int, gap: float, workdir: pathlib.Path
) -> dict[str, Any]:
    kubectl = str(devcluster.default_bindir(devcluster.default_workdir(REPO)) / "kubectl")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def k(*args: str, stdin: str | None = None) -> None:
        subprocess.run([kubectl, *args], input=stdin, text=True, env=env, check=True, capture_output=True)

    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    api.user_agent = "oncall-bench"
    core = kubernetes.client.CoreV1Api(api)
    ns = f"bench-oom-{uuid.uuid4().hex[:6]}"
    k("apply", "--server-side", "-f", str(REPO / "crds"))
    k("create", "namespace", ns)
    per_phase = samples + warmup
    targets = {phase: [f"t-{phase}-{i}" for i in range(per_phase)] for phase in ("floor", "op")}
    filler = max(0, pods - 2 * per_phase)
    objs = [_deployment(f"fill-{i}", min(CHUNK, filler - i * CHUNK)) for i in range((filler + CHUNK - 1) // CHUNK)]
    objs += [_deployment(name, 1) for names in targets.values() for name in names]
    k("apply", "-n", ns, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    t0 = time.monotonic()
    _wait(lambda: len(_pods(core, ns)) >= filler + 2 * per_phase, 600, f"{pods} pods")
    print(f"{len(_pods(core, ns))} pods in {time.monotonic() - t0:.0f}s", flush=True)
    obs = deployment_watch(api, ns)
    result: dict[str, Any] = {"pods": len(_pods(core, ns)), "warmup": warmup, "gap_s": gap, "cores": os.cpu_count()}

    cmd = [sys.executable, __file__, "floor", "--kubeconfig", str(kubeconfig), "--prefix", "t-floor-"]
    proc = _start(cmd, env, workdir / "floor.log", "ready")
    try:
        result["floor"] = _summary(_measure(core, obs, ns, targets["floor"], warmup, gap))
        result["floor"].update(_memory(proc.pid))
    finally:
        _stop(proc)
    print("floor:", {k: v for k, v in result["floor"].items() if k != "samples_ms"}, flush=True)
    # the floor's killed pods go, or the operator's start-up listing would record them while it is measured
    k("delete", "deployment", "-n", ns, "--cascade=foreground", "--timeout=300s", *targets["floor"])

    k("apply", "-n", ns, "-f", "-", stdin=json.dumps(OOM_RUNBOOK))
    cmd = [sys.executable, "-m", "oncall_operator.cli", "run"]
    op_env = {**env, "ONCALL_NAMESPACE": ns, "ONCALL_HTTP_ADDRESS": "127.0.0.1:0"}  # never collide on a port
    proc = _start(cmd, op_env, workdir / "operator.log", "configured: namespace")
    try:
        time.sleep(5)  # let the initial listing of every pod pass before the first kill
        result["operator"] = _summary(_measure(core, obs, ns, targets["op"], warmup, gap))
        result["operator"].update(_memory(proc.pid))
    finally:
        _stop(proc)
    print("operator:", {k: v for k, v in result["operator"].items() if k != "samples_ms"}, flush=True)
    result["ratio_p50"] = round(result["operator"]["p50_ms"] / result["floor"]["p50_ms"], 2)
    result["ratio_p99"] = round(result["operator"]["p99_ms"] / result["floor"]["p99_ms"], 2)
    obs.stop = True
    k("delete", "namespace", ns, "--wait=false")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "floor"))
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two kills")
    parser.add_argument("--kubeconfig", type=pathlib.Path)
    parser.add_argument("--prefix", default="t-floor-")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "bench" / "results")
    parser.add_argument("--logs", type=pathlib.Path, help="keep the operator's and the floor's logs here")
    args = parser.parse_args()
    if args.mode == "floor":
        asyncio.run(floor(str(args.kubeconfig), args.prefix))
        return 0
    with tempfile.TemporaryDirectory(prefix="oom-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        with contextlib.ExitStack() as stack:
            kubeconfig = args.kubeconfig
            if kubeconfig is None:
                bindir = devcluster.default_bindir(devcluster.default_workdir(REPO))
                plane = stack.enter_context(devcluster.ControlPlane(workdir / "cluster", bindir))
                kubeconfig = plane.kubeconfig
            result = run(kubeconfig, args.pods, args.samples, args.warmup, args.gap, workdir)
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*.log"):
                (args.logs / log.name).write_text(log.read_text())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    result.update(at=stamp, command=" ".join(["python", "bench/oom_latency.py", *sys.argv[1:]]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"oom_latency-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"floor p50 {result['floor']['p50_ms']} ms p99 {result['floor']['p99_ms']} ms")
    print(f"operator p50 {result['operator']['p50_ms']} ms p99 {result['operator']['p99_ms']} ms")
    print(f"ratios: p50 {result['ratio_p50']}x p99 {result['ratio_p99']}x (targets 2x, 5x); wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
