"""The command line, parsed as kubectl users type it: global flags anywhere, before or after the verb.

kubectl hands a plugin its arguments in the order typed, so ``kubectl oncall ack X -n team-a``
arrives as ``ack X -n team-a``. The global flags (``-n/--namespace``, ``-A/--all-namespaces``,
``--context``, ``--kubeconfig``, ``-o/--output``) are therefore declared once, on the top
parser and on every verb, with a suppressed default so a flag given after the verb is not
overwritten by the top parser's default. A usage error is one line and exit code 2.
"""

import argparse
from typing import Any, NoReturn

from oncall_operator.kubectl_plugin.errors import USAGE, PluginError

OUTPUTS = ("json", "yaml", "wide")
LISTS = ("who", "incidents")
"""The verbs whose output is a list, so ``-o`` applies."""
GLOBAL_DEFAULTS: dict[str, Any] = {
    "namespace": None,
    "all_namespaces": False,
    "context": None,
    "kubeconfig": None,
    "output": None,
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise PluginError(f"{message} (see kubectl oncall --help)", USAGE)


def _global_flags() -> Parser:
    flags = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    flags.add_argument("-n", "--namespace", help="namespace (default: the context's, else 'default')")
    flags.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (who, incidents, board)")
    flags.add_argument("--context", help="kubeconfig context")
    flags.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    flags.add_argument("-o", "--output", choices=OUTPUTS, help="json, yaml or wide, for lists (who, incidents)")
    return flags


DESCRIPTION = "The on-call handbook from the terminal: who is on call, incidents, the board, rota diffs."


def parser() -> argparse.ArgumentParser:
    """The whole command line; cheap to build (no client library is imported), so completion is quick."""
    flags = _global_flags()
    top = Parser(prog="kubectl oncall", description=DESCRIPTION, parents=[flags])
    sub = top.add_subparsers(dest="command", required=True, metavar="VERB", parser_class=Parser)

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, parents=[flags])

    who = verb("who", "who is on call now (or --at a time), and who is next")
    who.add_argument("schedule", nargs="?")
    who.add_argument("--at", help="RFC 3339 time, now, or now+2h")
    verb("incidents", "the open incidents, by severity then age")
    for name, text in (
        ("ack", "acknowledge an incident: stops the escalation"),
        ("resolve", "resolve an incident: stops reminders, tells who was paged"),
        ("timeline", "an incident's timeline, in order"),
        ("report", "the post-incident review report of a resolved incident"),
    ):
        verb(name, text).add_argument("incident")
    sub.choices["resolve"].add_argument("--note", help="what fixed it")
    approve = verb("approve", "approve a runbook action that awaits approval")
    approve.add_argument("incident")
    approve.add_argument("action", help="the action's name in the runbook")
    chk = verb("check", "tick an item of the incident's checklist")
    chk.add_argument("incident")
    chk.add_argument("item", type=int, help="the item's number, from 1")
    cal = verb("calendar", "the schedule as an iCalendar (RFC 5545) feed, for calendar apps")
    cal.add_argument("schedule")
    cal.add_argument("--days", type=int, default=90, help="how far ahead (default 90)")
    cal.add_argument("--past-days", type=int, default=7, help="how far back (default 7)")
    over = verb("override", "let somebody cover a role for a time range")
    over.add_argument("schedule")
    over.add_argument("--user", required=True)
    over.add_argument("--from", dest="start", required=True)
    over.add_argument("--to", dest="end", required=True)
    over.add_argument("--role")
    over.add_argument("--reason")
    board = verb("board", "a local web page: open incidents (ack, resolve) and schedule timelines")
    board.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    board.add_argument("--refresh", type=int, default=15, help="seconds between page refreshes (default 15)")
    diff = verb("diff", "who is on call / paged before and after a schedule or policy change")
    diff.add_argument("files", nargs="*", metavar="FILE", help="OLD.yaml NEW.yaml (or use -f for the live object)")
    diff.add_argument("-f", "--filename", help="the changed object, compared with the live one")
    diff.add_argument("--days", type=int, default=14, help="how far ahead (default 14)")
    diff.add_argument("--from", dest="start", help="start of the window (default now)")
    maint = verb("maintenance", "start or stop an ad-hoc maintenance window")
    steps = maint.add_subparsers(dest="maintenance", required=True, metavar="start|stop", parser_class=Parser)
    start = steps.add_parser("start", help="mute pages and/or automatic actions from now on", parents=[flags])
    start.add_argument("name", nargs="?", help="the window's name (default maintenance-<time>)")
    length = start.add_mutually_exclusive_group(required=True)
    length.add_argument("--for", dest="duration", help="how long, e.g. 2h or 90m")
    length.add_argument("--until", help="RFC 3339 end time, or now+2h")
    start.add_argument("--mutes", choices=("All", "Pages", "Actions"), default="All")
    start.add_argument("--reason", help="what the planned work is")
    start.add_argument("--namespaces", help="comma-separated; only from the operator's namespace")
    start.add_argument("--selector", help="workload labels, e.g. app=db,tier=data")
    start.add_argument("--alert", help="only Incidents of this alert name")
    steps.add_parser("stop", help="end a window now", parents=[flags]).add_argument("name")
    comp = verb("completion", "shell completion script for kubectl-oncall (bash or zsh)")
    comp.add_argument("shell", choices=("bash", "zsh"))
    return top


def parse(top: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args = top.parse_args(argv)
    for key, value in GLOBAL_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    if args.output and args.command not in LISTS:
        raise PluginError(f"-o applies to lists ({', '.join(LISTS)}), not to {args.command}", USAGE)
    return args
