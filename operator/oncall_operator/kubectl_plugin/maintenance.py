"""``kubectl oncall maintenance start|stop``: an ad-hoc MaintenanceWindow from the terminal.

    kubectl oncall maintenance start [NAME] --for 2h [--mutes All|Pages|Actions] [--reason TEXT]
                                     [--namespaces a,b] [--selector app=db,tier=data] [--alert NAME]
    kubectl oncall maintenance stop NAME

``start`` creates a one-off window from now (``--for`` a duration, or ``--until`` a time) in the
namespace; ``stop`` ends it now by setting its ``end`` (the window stays, as a record of the
planned work), or deletes it when it had not started yet. The API server checks the window
(CEL), the operator its scope (only a window in the operator's namespace covers others).
The arguments are declared in :mod:`.args` with the other verbs (so completion stays light).
"""

import argparse
import datetime as dt
from typing import Any

import kubernetes
import pydantic

from oncall_operator.api import GROUP, VERSION, kinds, maintenance
from oncall_operator.kubectl_plugin.errors import PluginError
from oncall_operator.kubectl_plugin.session import Session, now
from oncall_operator.kubectl_plugin.who import parse_time

PLURAL = kinds.MAINTENANCE.plural


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


def cmd_maintenance(s: Session, args: argparse.Namespace) -> str:
    """``maintenance start`` or ``maintenance stop``, in the session's namespace."""
    args.namespace = s.namespace
    return (cmd_start if args.maintenance == "start" else cmd_stop)(s, args)


def cmd_start(s: Session, args: argparse.Namespace) -> str:
    k = s.kube
    body = window_body(args, now())
    k.custom.create_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, body)
    spec = body["spec"]
    return (
        f"maintenance window {args.namespace}/{body['metadata']['name']} started: mutes {spec['mutes']} "
        f"until {spec['end']} (kubectl oncall maintenance stop {body['metadata']['name']})"
    )


def cmd_stop(s: Session, args: argparse.Namespace) -> str:
    k, at = s.kube, now()
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
    if spec.end <= at:
        return f"maintenance window {where} had already ended at {_stamp(spec.end)}"
    if spec.start >= at:
        k.custom.delete_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name)
        return f"maintenance window {where} had not started yet: deleted"
    patch = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"end": _stamp(at)}}
    k.custom.patch_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL, args.name, patch)
    return f"maintenance window {where} stopped at {_stamp(at)}: pages and actions resume"
