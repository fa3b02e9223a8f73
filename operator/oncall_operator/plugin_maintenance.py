"""``kubectl oncall maintenance start|stop``: an ad-hoc MaintenanceWindow from the terminal.

    kubectl oncall maintenance start [NAME] --for 2h [--mutes All|Pages|Actions] [--reason TEXT]
                                     [--namespaces a,b] [--selector app=db,tier=data] [--alert NAME]
    kubectl oncall maintenance stop NAME

``start`` creates a one-off window from now (``--for`` a duration, or ``--until`` a time) in the
namespace; ``stop`` ends it now by setting its ``end`` (the window stays, as a record of the
planned work), or deletes it when it had not started yet. The API server checks the window
(CEL), the operator its scope (only a window in the operator's namespace covers others).
Kept apart from ``kubectl_plugin`` (one :func:`register` call there) so that module can change shape.
"""

import argparse
import datetime as dt
from typing import Any

import kubernetes
import pydantic

from oncall_operator import kubectl_plugin
from oncall_operator.adapters import kube
from oncall_operator.api import GROUP, VERSION, kinds, maintenance
from oncall_operator.kubectl_plugin import PluginError, parse_time

PLURAL = kinds.MAINTENANCE.plural

_now = kubectl_plugin._now


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pairs(text: str | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (text or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise PluginError(f"{what} {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def window_body(args: argparse.Namespace, now: dt.datetime) -> dict[str, Any]:
    """The MaintenanceWindow ``start`` creates, validated by the same model the CRD is generated from."""
    try:
        end = parse_time(args.until or f"now+{args.duration}", now)
    except ValueError as error:
        raise PluginError(f"--for {args.duration!r}: {error}") from error
    if end <= now:
        raise PluginError(f"the window would end at {_stamp(end)}, which is not after now ({_stamp(now)})")
    scope: dict[str, Any] = {}
    if args.namespaces:
        scope["namespaces"] = [n.strip() for n in args.namespaces.split(",") if n.strip()]
    if args.selector:
        scope["workloadSelector"] = _pairs(args.selector, "--selector")
    if args.alert:
        scope["matchers"] = [{"label": "alertname", "value": args.alert}]
    fields = {
        "reason": args.reason or "",
        "start": _stamp(now),
        "end": _stamp(end),
        "scope": scope,
        "mutes": args.mutes,
    }
    try:
        spec = maintenance.MaintenanceWindowSpec.model_validate(fields)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise PluginError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from error
    name = args.name or f"maintenance-{now.strftime('%Y%m%d-%H%M%S')}"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kinds.MAINTENANCE.kind,
        "metadata": {"name": name, "namespace": args.namespace},
        "spec": spec.wire(),
    }


def cmd_start(k: kube.Kube, args: argparse.Namespace) -> str:
    now = _now()
    body = window_body(args, now)
    k.custom.create_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, body)
    spec = body["spec"]
    return (
        f"maintenance window {args.namespace}/{body['metadata']['name']} started: mutes {spec['mutes']} "
        f"until {spec['end']} (kubectl oncall maintenance stop {body['metadata']['name']})"
    )


def cmd_stop(k: kube.Kube, args: argparse.Namespace) -> str:
    now = _now()
    try:
        obj = k.custom.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise PluginError(f'maintenance window "{args.name}" not found in {args.namespace}') from error
        raise
    spec = maintenance.MaintenanceWindowSpec.model_validate(obj.get("spec") or {})
    where = f"{args.namespace}/{args.name}"
    if spec.recurring is not None:
        raise PluginError(f"{where} is recurring: edit its times or delete it (kubectl delete mw {args.name})")
    assert spec.start is not None and spec.end is not None
    if spec.end <= now:
        return f"maintenance window {where} had already ended at {_stamp(spec.end)}"
    if spec.start >= now:
        k.custom.delete_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
        return f"maintenance window {where} had not started yet: deleted"
    patch = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"end": _stamp(now)}}
    k.custom.patch_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name, patch)
    return f"maintenance window {where} stopped at {_stamp(now)}: pages and actions resume"


def register(subparsers: Any) -> None:
    """Add ``maintenance start|stop`` to the plugin's subcommands."""
    top = subparsers.add_parser("maintenance", help="start or stop an ad-hoc maintenance window")
    sub = top.add_subparsers(dest="maintenance", required=True)
    start = sub.add_parser("start", help="mute pages and/or automatic actions from now on")
    start.add_argument("name", nargs="?", help="the window's name (default maintenance-<time>)")
    length = start.add_mutually_exclusive_group(required=True)
    length.add_argument("--for", dest="duration", help="how long, e.g. 2h or 90m")
    length.add_argument("--until", help="RFC 3339 end time, or now+2h")
    start.add_argument("--mutes", choices=[m.value for m in maintenance.Mutes], default=maintenance.Mutes.ALL.value)
    start.add_argument("--reason", help="what the planned work is")
    start.add_argument("--namespaces", help="comma-separated; only from the operator's namespace")
    start.add_argument("--selector", help="workload labels, e.g. app=db,tier=data")
    start.add_argument("--alert", help="only Incidents of this alert name")
    start.set_defaults(run=cmd_start)
    stop = sub.add_parser("stop", help="end a window now")
    stop.add_argument("name")
    stop.set_defaults(run=cmd_stop)
