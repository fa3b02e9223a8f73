"""The cluster-scale bench harness runs end to end at small scale and writes what the notes read.

``make bench`` is slow and CI never runs it, so without this test the harness would rot unseen.
It runs bench/cluster_scale.py exactly as ``make bench`` does, on its own simulated cluster
(control plane with kube-scheduler, plus kwok), at 50 pods, a few OOM kills per phase and one
second of alerts, then checks the JSON has every figure the notes quote. It asserts no timing:
the figures are for notes, never for tests (docs/ARCHITECTURE.md, "Targets").

kwok is built here through ``hack/build-tools.sh kwok`` rather than skipped when absent: the
build is a cache hit once per machine, and cold it takes about 2.5 minutes on 2 cores (module
downloads included), which is affordable once per CI machine, whereas a skip would mean the
harness is never exercised in CI at all. The test is skipped only where Go is missing, and
then only outside CI (``$CI`` set: it fails instead).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, skip_unless_ci

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def kwok() -> pathlib.Path:
    if shutil.which("go") is None:
        skip_unless_ci("kwok is built from its Go module and Go is not installed")
    build = subprocess.run([str(REPO / "hack" / "build-tools.sh"), "kwok"], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, f"hack/build-tools.sh kwok failed:\n{build.stdout}\n{build.stderr}"
    return REPO / ".cluster" / "bin" / "kwok"


def _stop_all_under(workdir: pathlib.Path) -> None:
    """SIGKILL every process whose command line names ``workdir`` (the cluster's data and logs are there)."""
    for proc in pathlib.Path("/proc").iterdir():
        try:
            named = str(workdir).encode() in (proc / "cmdline").read_bytes()
            if proc.name.isdigit() and named:
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone meanwhile, or not a process


@pytest.mark.timeout(2100)  # a cold kwok build is in the fixture; the run itself takes about 40 s quiet
def test_the_harness_runs_at_small_scale_and_writes_every_figure(kwok: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert kwok.exists()
    workdir, out = tmp_path / "work", tmp_path / "results"
    cmd = [
        sys.executable,
        str(REPO / "bench" / "cluster_scale.py"),
        "--sizes=50",
        "--samples=3",
        "--warmup=0",
        "--gap=0.5",
        "--alert-rates=10",
        "--alert-seconds=1",
        "--no-chart",  # matplotlib is a bench extra, not a test dependency
        "--before=HEAD",  # the before/after mechanism, here with the same code on both sides
        f"--out={out}",
        f"--workdir={workdir}",
    ]
    # The audit window of the OOM phase ends when the harness has measured its kills, which a busy machine
    # delays past the operator's first recheck of Mitigated Incidents (ONCALL_RECHECK_SECONDS, 30 s after its
    # start), whose status write is no part of a remediation: the recheck is kept out of this short run.
    env = {**os.environ, "ONCALL_RECHECK_SECONDS": "3600"}
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        stdout, stderr = run.communicate(timeout=1200)  # over 600 s beside a CPU hog
    except subprocess.TimeoutExpired:
        run.terminate()  # the harness stops its operators and its cluster on SIGTERM
        stdout, stderr = run.communicate(timeout=180)
        pytest.fail(f"bench did not finish within 1200 s:\n{stdout[-4000:]}\n{stderr[-4000:]}")
    finally:
        _stop_all_under(workdir)  # whatever a cut-short harness left running (its cluster runs in sessions of its own)
    assert run.returncode == 0, f"bench failed:\n{stdout[-4000:]}\n{stderr[-4000:]}"

    [result] = [json.loads(p.read_text()) for p in out.glob("cluster_scale-*.json")]
    assert [p.suffix for p in sorted(out.glob("cluster_scale-*"))] == [".json", ".md"]
    assert {"at", "command", "cores", "kwok", "samples", "seconds", "sizes"} <= result.keys()
    [size] = result["sizes"]
    assert size["pods"] >= 50 and size["nodes"] >= 2
    grow = size["grow"]  # what growing the cluster cost, and who was busy (fillers made bound to a node)
    assert grow["pods_added"] == size["pods"] and grow["pods_per_s"] > 0 and grow["fillers_pinned"] is True
    assert {"kube-apiserver", "etcd", "kwok", "kube-controller-manager", "kube-scheduler"} <= grow["cpu_cores"].keys()
    for who in ("floor", "operator"):
        assert {"n", "p50_ms", "p95_ms", "p99_ms"} <= size[who].keys() and size[who]["n"] == 3
    assert {"peak_rss_mib", "cpu"} <= size["operator"].keys()
    assert {"startup", "oom", "alerts"} == size["operator"]["cpu"].keys()
    assert {"ratio_p50", "ratio_p95", "ratio_p99"} <= size.keys()
    api = size["api"]
    assert {"requests_per_remediation", "writes_per_remediation", "pod_writes_per_remediation"} <= api.keys()
    assert api["requests_per_remediation"].get("PATCH deployments", 0) >= 1  # the remediation itself
    assert size["pod_writes_by_operator_objects"] == 0  # the operator never writes a Pod
    audit = api["audit_per_remediation"]  # the operator's own requests, by user agent, from the audit log
    assert audit["requests"].get("patch deployments 200", 0) >= 1 and audit["dry_runs"] >= 1
    assert audit["pod_writes"] == 0 and audit["writes"] >= 2, audit  # the patch and the Incident
    # docs/ARCHITECTURE.md, Targets: at most 3 writes per remediation
    # (patch, Incident create, its status with Ready in it)
    assert audit["writes"] <= 3 and not [k for k in audit["requests"] if k.startswith("patch incidents")], audit[
        "requests"
    ]
    [alerts] = size["alerts"]
    assert alerts["rate"] == 10 and alerts["notified"] == alerts["alerts"] == 10
    assert {"p50_ms", "p95_ms", "p99_ms"} <= alerts["first_notification"].keys()
    assert alerts["audit_per_alert"]["requests"].get("create incidents 201", 0) >= 1
    before = size["before"]  # the operator as git archive'd at --before, measured in the same run
    assert before["operator"]["n"] == 3 and {"ratio_p50", "api", "alerts"} <= before.keys()
    assert before["alerts"][0]["notified"] == 10
    report = next(out.glob("cluster_scale-*.md")).read_text()
    assert len(result["before"]) == 40 and "## Before (" in report and "## Growing the cluster" in report

    left = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True).stdout.strip()
    assert not left, f"bench processes left running: {left}"
