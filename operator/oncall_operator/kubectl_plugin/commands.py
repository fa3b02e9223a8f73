"""The verb table and ``main``: parse, connect with the user's kubeconfig when the verb needs it, print, exit.

Every failure is one line on stderr (``error: ...``) and an exit code from :mod:`errors`.
"""

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import kubernetes
import urllib3

from oncall_operator.kubectl_plugin import args as cli
from oncall_operator.kubectl_plugin import board, completion, diff, incidents, maintenance, who
from oncall_operator.kubectl_plugin.errors import DIFF_FAILED, FAILED, OK, UNREACHABLE, USAGE, PluginError
from oncall_operator.kubectl_plugin.session import Session, connect

HANDLERS: dict[str, Callable[..., Any]] = {
    "who": who.cmd_who,
    "incidents": incidents.cmd_incidents,
    "ack": incidents.cmd_ack,
    "resolve": incidents.cmd_resolve,
    "timeline": incidents.cmd_timeline,
    "report": incidents.cmd_report,
    "approve": incidents.cmd_approve,
    "check": incidents.cmd_check,
    "calendar": who.cmd_calendar,
    "override": who.cmd_override,
    "board": board.cmd_board,
    "diff": diff.cmd_diff,
    "maintenance": maintenance.cmd_maintenance,
    "completion": lambda _connect, a: completion.script(a.shell),
}
LAZY = ("diff", "completion")
"""Verbs handed a ``connect`` function rather than a session: they may need no cluster at all."""


def _run(args: argparse.Namespace) -> tuple[str, int]:
    def session() -> Session:
        return connect(args.kubeconfig, args.context, args.namespace, args.all_namespaces)

    run = HANDLERS[args.command]
    result = run(session, args) if args.command in LAZY else run(session(), args)
    return result if isinstance(result, tuple) else (result, OK)


def main(argv: list[str] | None = None) -> int:
    try:
        args = cli.parse(cli.parser(), sys.argv[1:] if argv is None else argv)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    try:
        text, code = _run(args)
    except PluginError as error:
        return _fail(args, str(error), error.code)
    except kubernetes.client.ApiException as error:
        return _fail(args, f"the API server said {error.status} {error.reason}: {_api_message(error)}", FAILED)
    except (urllib3.exceptions.HTTPError, OSError, kubernetes.config.ConfigException) as error:
        return _fail(args, f"cannot reach the API server: {error}", UNREACHABLE)
    if text:
        print(text)
    return code


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    if args.command == "diff" and code == FAILED:
        return DIFF_FAILED
    return code


def _api_message(error: Any) -> str:
    try:
        return str(json.loads(error.body).get("message", ""))
    except (TypeError, ValueError):
        return ""


__all__ = ["USAGE", "main"]
