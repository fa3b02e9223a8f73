"""``kubectl oncall diff``: who is on call, and who would be paged, before and after a change.

``diff -f NEW.yaml`` compares the OnCallSchedules and EscalationPolicies in the file with the
live objects of the same names (read with the user's kubeconfig); ``diff OLD.yaml NEW.yaml``
compares two files. The hours come from :mod:`domain.rota_diff`. Exit codes follow
``kubectl diff``: 0 nothing changes, 1 something does, 4 (above 1) it could not compare.
"""

import argparse
import datetime as dt
import pathlib
from collections.abc import Callable
from typing import Any

import kubernetes
import pydantic
import yaml

from oncall_operator.api import GROUP, VERSION, kinds, policy, schedule
from oncall_operator.domain import checks, rota_diff
from oncall_operator.kubectl_plugin.errors import CHANGED, OK, USAGE, PluginError
from oncall_operator.kubectl_plugin.session import Session, now
from oncall_operator.kubectl_plugin.who import parse_time

KINDS = {kinds.SCHEDULE.kind: kinds.SCHEDULE, kinds.POLICY.kind: kinds.POLICY}
Spec = schedule.OnCallScheduleSpec | policy.EscalationPolicySpec
Objects = dict[tuple[str, str], Spec]
"""(kind, name) -> the object's spec."""


def _spec(raw: dict[str, Any], where: str) -> Spec:
    what = f"{where}: {raw['kind']}/{raw['metadata'].get('name', '')}"
    try:
        if raw["kind"] != kinds.SCHEDULE.kind:
            return policy.EscalationPolicy.model_validate(raw).spec
        spec = schedule.OnCallSchedule.model_validate(raw).spec
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise PluginError(f"{what}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from error
    if not checks.zone_exists(spec.time_zone):
        raise PluginError(f"{what}: {spec.time_zone!r} is not an IANA time zone")
    return spec


def load(path: str) -> Objects:
    """The schedules and policies in a YAML file (other kinds are not about who is on call)."""
    try:
        documents = list(yaml.safe_load_all(pathlib.Path(path).read_text()))
    except (OSError, yaml.YAMLError) as error:
        raise PluginError(f"cannot read {path}: {error}") from error
    found: Objects = {}
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") in KINDS:
            doc.setdefault("metadata", {})
            found[(doc["kind"], str(doc["metadata"].get("name", "")))] = _spec(doc, path)
    if not found:
        raise PluginError(f"{path} has no OnCallSchedule or EscalationPolicy")
    return found


def _live(s: Session, kind: str, name: str) -> Spec | None:
    try:
        raw = s.kube.custom.get_namespaced_custom_object(GROUP, VERSION, s.namespace, KINDS[kind].plural, name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return _spec(raw, f"live in {s.namespace}")


Fallback = Callable[[str], Spec | None]


def _specs(objects: Objects, fallback: Fallback) -> dict[str, schedule.OnCallScheduleSpec]:
    """The schedules a policy may name: those in ``objects``, then any other one it names, from ``fallback``."""
    found = {name: spec for (_kind, name), spec in objects.items() if isinstance(spec, schedule.OnCallScheduleSpec)}
    policies = [spec for spec in objects.values() if isinstance(spec, policy.EscalationPolicySpec)]
    named = [t.schedule.name for p in policies for level in p.levels for t in level.targets if t.schedule]
    for name in dict.fromkeys(named):
        if name not in found and isinstance(other := fallback(name), schedule.OnCallScheduleSpec):
            found[name] = other
    return found


def _schedule(spec: Spec | None) -> schedule.OnCallScheduleSpec | None:
    return spec if isinstance(spec, schedule.OnCallScheduleSpec) else None


def _policy(spec: Spec | None) -> policy.EscalationPolicySpec | None:
    return spec if isinstance(spec, policy.EscalationPolicySpec) else None


def _zone(*specs: Spec | None) -> dt.tzinfo:
    """The first schedule's zone (the diff's hours are shown in it), else UTC."""
    return rota_diff.zone(next((s.time_zone for s in specs if isinstance(s, schedule.OnCallScheduleSpec)), "UTC"))


def compare(
    old: Objects,
    new: Objects,
    labels: tuple[str, str],
    window: tuple[dt.datetime, dt.datetime],
    fallback: Fallback = lambda _name: None,
) -> tuple[str, int]:
    """The rendered diff of every object in ``new`` (and removed from ``old``), and the exit code.

    ``fallback`` reads a schedule a policy names that neither side carries (the live one).
    """
    (old_label, new_label), (start, end) = labels, window
    old_specs, new_specs = _specs(old, fallback), _specs(new, fallback)
    texts = []
    for kind, name in dict.fromkeys([*new, *old]):
        was, now_ = old.get((kind, name)), new.get((kind, name))
        try:
            if kind == kinds.SCHEDULE.kind:
                changes = rota_diff.schedule_changes(_schedule(was), _schedule(now_), start, end)
                zone = _zone(now_, was)
            else:
                changes = rota_diff.policy_changes(_policy(was), _policy(now_), old_specs, new_specs, start, end)
                zone = _zone(*new_specs.values(), *old_specs.values())
        except LookupError as error:
            raise PluginError(f"{kind}/{name}: {error}") from error
        text = rota_diff.render(changes, zone, f"{kind}/{name} ({old_label})", f"{kind}/{name} ({new_label})")
        if text:
            texts.append(text)
    return "\n".join(texts), CHANGED if texts else OK


def cmd_diff(connect: Callable[[], Session], args: argparse.Namespace) -> tuple[str, int]:
    if args.days < 1:
        raise PluginError("--days must be at least 1", USAGE)
    start = parse_time(args.start, now()) if args.start else now()
    window = (start, start + dt.timedelta(days=args.days))
    if args.filename and not args.files:
        s = connect()
        new = load(args.filename)
        old = {key: live for key in new if (live := _live(s, *key)) is not None}
        labels = (f"live in {s.namespace}", args.filename)
        return compare(old, new, labels, window, lambda name: _live(s, kinds.SCHEDULE.kind, name))
    if len(args.files) == 2 and not args.filename:
        return compare(load(args.files[0]), load(args.files[1]), (args.files[0], args.files[1]), window)
    raise PluginError("diff needs -f FILE (against the live objects) or OLD.yaml NEW.yaml", USAGE)
