"""``dev-cluster up|down|status``: the command line behind ``make cluster-up``/``cluster-down``.

Errors are reported as one message on stderr and a non-zero exit code, never a traceback:
the message already says what failed and what to run about it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import DevClusterError
from .launcher import down, status, up
from .paths import default_bindir, default_workdir

PROG = "dev-cluster"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir: Path = (args.dir or default_workdir()).absolute()
    try:
        if args.command == "up":
            return _up(workdir, args.bin or default_bindir(workdir), args.with_scheduler)
        if args.command == "down":
            return _down(workdir)
        return _status(workdir)
    except DevClusterError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `... up | head -1`: the work is done, only output was lost
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run a local Kubernetes control plane.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start it, or reuse it if it is already running and healthy"),
        ("down", "stop it; no process is left behind"),
        ("status", "check it (exit code 0 only if healthy)"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--dir", type=Path, help="cluster directory (default: <repo>/.cluster)")
        if name == "up":
            cmd.add_argument("--bin", type=Path, help="binaries directory (default: <dir>/bin)")
            cmd.add_argument("--with-scheduler", action="store_true", help="also run kube-scheduler")
    return parser


def _up(workdir: Path, bindir: Path, with_scheduler: bool) -> int:
    result = up(workdir, bindir, with_scheduler=with_scheduler)
    st = result.state
    names = ", ".join(p.name for p in st.processes)
    if result.reused:
        print(f"dev cluster already running and healthy at {st.server} ({names})")
    else:
        print(f"dev cluster ready in {st.startup_seconds:.1f}s at {st.server} ({names})")
    print(f"kubeconfig: {st.kubeconfig}")
    print(f"  export KUBECONFIG={st.kubeconfig}")
    print(f"stop it with: python -m oncall_operator.devcluster down --dir {workdir}")
    return 0


def _down(workdir: Path) -> int:
    stopped = down(workdir)
    if stopped is None:
        print(f"no dev cluster recorded in {workdir}; nothing to stop")
    else:
        print(f"dev cluster in {workdir} stopped ({len(stopped.processes)} processes)")
    return 0


def _status(workdir: Path) -> int:
    found = status(workdir)
    if found.state is None:
        print(f"no dev cluster recorded in {workdir}")
        return 1
    for proc in found.state.processes:
        print(f"{proc.name:<24} pid {proc.pid:<8} log {proc.log}")
    print(f"server: {found.state.server}  kubeconfig: {found.state.kubeconfig}")
    if found.healthy:
        print("healthy")
        return 0
    for problem in found.problems:
        print(f"unhealthy: {problem}")
    return 1
