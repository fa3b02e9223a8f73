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
from .images import HOG, OPERATOR, PAUSE
from .launcher import down, status, up
from .netns import NAME as NETNS
from .netns import NODE_IP
from .node import unable
from .nodeconfig import NODE_NAME
from .paths import default_bindir, default_workdir

PROG = "dev-cluster"
IMAGES = (OPERATOR, HOG, PAUSE)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    workdir: Path = (args.dir or default_workdir()).absolute()
    try:
        if args.command == "up":
            return _up(workdir, args.bin or default_bindir(workdir), args.with_scheduler, args.node)
        if args.command == "can-run-node":
            reason = unable(args.bin or default_bindir(workdir))
            print(reason or "this machine can run a real node")
            return 1 if reason else 0
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
        ("can-run-node", "say whether this machine can run `up --node` (exit code 0 if it can)"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--dir", type=Path, help="cluster directory (default: <repo>/.cluster)")
        if name in ("up", "can-run-node"):
            cmd.add_argument("--bin", type=Path, help="binaries directory (default: <dir>/bin)")
        if name == "up":
            cmd.add_argument("--with-scheduler", action="store_true", help="also run kube-scheduler")
            cmd.add_argument(
                "--node",
                action="store_true",
                help="also a real node (containerd, kubelet, kube-proxy in a network namespace; root only)",
            )
    return parser


def _up(workdir: Path, bindir: Path, with_scheduler: bool, node: bool) -> int:
    result = up(workdir, bindir, with_scheduler=with_scheduler, node=node)
    st = result.state
    names = ", ".join(p.name for p in st.processes)
    if result.reused:
        print(f"dev cluster already running and healthy at {st.server} ({names})")
    else:
        print(f"dev cluster ready in {st.startup_seconds:.1f}s at {st.server} ({names})")
    if st.node:
        print(f"node {NODE_NAME} Ready at {NODE_IP} (network namespace {NETNS}); images: {', '.join(IMAGES)}")
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
