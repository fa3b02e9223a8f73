"""The ``oncall-operator`` command: run the operator, manage the local control plane, make CRDs.

oncall-operator run [--kubeconfig PATH] [--namespace NS ...]   the operator, in the foreground
                    [--peering NAME [--priority N]]           one of several replicas (one acts)
                    [--event-loop uvloop|asyncio]             the event loop (default: uvloop)
oncall-operator dev-cluster up [--node]|down|status            the local control plane (and a real node)
oncall-operator crds [--check]                                 generate or check crds/
"""

import argparse
import asyncio
import collections.abc as cabc
import logging
import os
import secrets
import sys
import time


def _run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    if args.operator_namespace:
        os.environ["ONCALL_NAMESPACE"] = args.operator_namespace
    # the watch scope, for the executor's own check before any write (executor.config.Config)
    os.environ["ONCALL_WATCH_NAMESPACES"] = ",".join(args.namespace or [])
    if args.peering:  # read by executor.config: the lifetime, and the leadership observer
        os.environ["ONCALL_PEERING"] = args.peering
        os.environ["ONCALL_PEERING_LIFETIME"] = str(args.peering_lifetime)
    import kopf  # imported late: `crds` and `dev-cluster` must work without a cluster

    from oncall_operator import handlers  # registers every handler
    from oncall_operator.adapters import collector

    assert handlers
    collector.tune()  # the code is imported: out of the garbage collector's reach from here on
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:  # Kopf's "Handler ... succeeded." for every event: 3 lines per alert in a storm
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # a failing handler still says so
    namespaces = args.namespace or []
    with asyncio.Runner(loop_factory=_loop_factory(args.event_loop)) as runner:
        kopf.run(
            loop=runner.get_loop(),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=not args.peering,
            peering_name=args.peering or None,
            priority=_priority(args) if args.peering else None,
            liveness_endpoint=args.liveness,
        )
    return 0


def _loop_factory(name: str) -> cabc.Callable[[], asyncio.AbstractEventLoop]:
    """uvloop by default: the operator's CPU per alert is mostly event-loop and socket machinery.

    Issue 18's profile of the alert path at 50 alerts/s put a quarter of the main thread in asyncio's
    own Python code and a tenth in its socket transport's writes; uvloop does both in C (libuv).
    ``asyncio`` is the standard library's loop, for a platform uvloop does not build on.
    """
    if name == "asyncio":
        return asyncio.new_event_loop
    import uvloop

    return uvloop.new_event_loop


def _priority(args: argparse.Namespace) -> int:
    """The given priority, or one by seniority: the replica that started first acts."""
    if args.priority is not None:
        return int(args.priority)
    from oncall_operator.domain import peering

    return peering.seniority_priority(time.time_ns() // 1_000_000, secrets.randbelow(peering.JITTER))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # These two own their arguments; hand them over before argparse reads any option.
    if argv and argv[0] == "dev-cluster":
        from oncall_operator.devcluster import commands

        return commands.main(argv[1:])
    if argv and argv[0] == "crds":
        from oncall_operator.api import crdgen

        return crdgen.main(argv[1:])
    parser = argparse.ArgumentParser(prog="oncall-operator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the configured cluster")
    run.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        help="watch only this namespace (repeat; globs allowed); default: all",
    )
    run.add_argument(
        "--operator-namespace",
        help="where default runbooks live (default: $ONCALL_NAMESPACE or oncall-system)",
    )
    run.add_argument(
        "--liveness",
        default=None,
        help="serve Kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas: Kopf peering NAME lets one act (default: standalone)",
    )
    run.add_argument(
        "--priority",
        type=int,
        help="this replica's peering priority; distinct per replica (default: the first started acts)",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=15,
        metavar="SECONDS",
        help="how long a silent replica counts as alive: the takeover time after a crash (default: 15)",
    )
    run.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop: uvloop (libuv, the default) or the standard library's asyncio",
    )
    run.add_argument("--verbose", "-v", action="store_true")

    dev = sub.add_parser(
        "dev-cluster",
        help="the local control plane (etcd, kube-apiserver, kube-controller-manager)",
        add_help=False,
    )
    dev.add_argument("rest", nargs=argparse.REMAINDER)

    crds = sub.add_parser("crds", help="generate crds/ from the models, or --check them", add_help=False)
    crds.add_argument("rest", nargs=argparse.REMAINDER)

    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
