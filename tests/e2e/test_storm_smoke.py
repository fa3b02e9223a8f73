"""The alert-storm bench (bench/storm.py) runs end to end at a tiny size and writes every figure the notes read.

``make bench-storm`` takes most of an hour and CI never runs it; this runs the same script with a
dozen Incidents, a 10 s level 2, a 5 s peering lifetime and a 3 s idle window, on its own simulated
cluster (kwok built as test_bench_smoke.py does), and checks the JSON and the markdown. No timing
is asserted: the figures are for notes (docs/ARCHITECTURE.md, "Targets"). What is asserted is what
must hold at any speed: every alert answered 200, every due level-2 page arrived and none for an
acknowledged Incident, the takeover and the restart each paged a due step, and the leader holds
every Incident without writing anything while nothing is due.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.e2e.test_bench_smoke import kwok

pytestmark = pytest.mark.e2e
__all__ = ["kwok"]


@pytest.mark.timeout(1200)  # a cold kwok build is in the fixture; the run itself takes about a minute
def test_the_storm_bench_runs_at_a_tiny_size_and_writes_every_figure(
    kwok: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    workdir, out = tmp_path / "work", tmp_path / "results"
    cmd = [
        sys.executable,
        str(REPO / "bench" / "storm.py"),
        "--sizes=12",
        "--namespaces=2",
        "--rate=20",
        "--after=10",  # the acknowledgements (a thread of the harness) land well before level 2
        "--quiet=3",
        "--peering-lifetime=5",
        f"--out={out}",
        f"--workdir={workdir}",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, f"bench failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"

    [result] = [json.loads(p.read_text()) for p in out.glob("storm-*.json")]
    assert {"at", "command", "commit", "cores", "settings", "load_start", "load_end", "sizes"} <= result.keys()
    [size] = result["sizes"]
    storm = size["storm"]
    assert storm["alerts"] == 12 and storm["codes"] == {"200": 12} and storm["operator_cpu_ms_per_alert"] > 0
    # 12 alerts: severities critical, warning, info, critical, warning, ...; every 5th paging one acknowledged
    late = size["lateness"]
    assert late["n"] == storm["level2_expected"] == 7 and late["pages_after_ack"] == 0, late
    assert {"p50_ms", "p99_ms"} <= late.keys()
    assert size["api_per_idle_tick"]["writes"] == 0, size["api_per_idle_tick"]  # nothing due: nothing written
    assert size["leader_rss_mib"]["peak"] > 0
    takeover = size["takeover"]
    assert takeover["takeover_first_due_page_s"] > 0 and takeover["restart_first_due_page_s"] > 0
    assert takeover["peering_lifetime_s"] == 5 and takeover["standby_rss_mib"] > 0
    assert "| due level-2 pages" in next(out.glob("storm-*.md")).read_text()

    left = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True).stdout.strip()
    assert not left, f"bench processes left running: {left}"
