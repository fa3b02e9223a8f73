"""The exact change of each runbook action on a workload or a flag store, as a guarded JSON patch.

A rollback is ``kubectl rollout undo`` (Deployments: the previous ReplicaSet's template;
StatefulSets: the previous ControllerRevision's), a scale-up respects the HPA and
``maxReplicas``, a flag is set only in a ConfigMap labelled as a flag store. Every patch has
``test`` operations on the values it replaces and writes the action's marker in the same patch.
A change that cannot be made raises :class:`action_types.Stop` with the refusal. Pure.
"""

import collections.abc as cabc
import copy
from typing import Any

from oncall_operator.api import durations, incident, runbook
from oncall_operator.domain import guardrails, tenancy, timestamps, workload
from oncall_operator.domain.action_types import (
    ANNOTATIONS_TO_SKIP,
    HASH_LABEL,
    MARKER,
    REVISION,
    ActionType,
    Change,
    Due,
    Facts,
    refuse,
)


def flag_namespace(inc: incident.Incident) -> str:
    return inc.spec.target.namespace or inc.metadata.namespace


def flag(inc: incident.Incident, due: Due, facts: Facts, key: str) -> Change:
    settings = due.action.set_feature_flag
    assert settings is not None
    flag = settings.key
    if settings.key_from_label:
        flag = inc.spec.source.labels.get(settings.key_from_label) or None
        if flag is None:
            raise refuse(due, "NoFlagLabel", f"the alert has no label {settings.key_from_label} naming a flag")
    if not flag:
        raise refuse(due, "NoFlagLabel", "setFeatureFlag names neither key nor keyFromLabel")
    ns = flag_namespace(inc)
    cm = facts.config_map
    if cm is None:
        raise refuse(due, "ConfigMapNotFound", f"ConfigMap {ns}/{settings.config_map} does not exist")
    meta = cm.get("metadata") or {}
    not_a_store = tenancy.flag_store_refusal(settings.config_map, meta.get("labels"))
    if not_a_store is not None:
        raise refuse(due, "NotAFlagStore", not_a_store)
    data = cm.get("data")
    old = (data or {}).get(flag)
    if old == settings.value:
        raise refuse(due, "FlagAlreadySet", f"flag {flag} in ConfigMap {settings.config_map} is {old!r} already")
    path = f"/data/{guardrails.escape(flag)}"
    ops: list[dict[str, Any]] = []
    if data is None:
        ops += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion", "")},
            {"op": "add", "path": "/data", "value": {flag: settings.value}},
        ]
    elif old is None:
        ops += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion", "")},
            {"op": "add", "path": path, "value": settings.value},
        ]
    else:
        ops += [
            {"op": "test", "path": path, "value": old},
            {"op": "replace", "path": path, "value": settings.value},
        ]
    store = f"/metadata/labels/{guardrails.escape(tenancy.FEATURE_FLAGS_LABEL)}"
    ops += [{"op": "test", "path": store, "value": "true"}, *_marker_ops(meta, key)]
    before, after = f"{flag}={old if old is not None else '(unset)'}", f"{flag}={settings.value}"
    summary = f"set flag {flag} in ConfigMap {ns}/{settings.config_map}: {before} -> {after}"
    return Change("ConfigMap", ns, settings.config_map, tuple(ops), before, after, summary)


def workload_change(inc: incident.Incident, due: Due, facts: Facts, key: str) -> Change:
    target = inc.spec.target
    if target.kind not in workload.SUPPORTED or not target.name:
        what = f"{target.kind} {target.name}".strip() or "no workload"
        raise refuse(
            due, "NoTarget", f"the alert names {what}; {due.action.type.value} needs a Deployment or StatefulSet"
        )
    obj = facts.target
    if obj is None:
        raise refuse(due, "TargetNotFound", f"{target.kind} {target.namespace}/{target.name} does not exist")
    if due.action.type == ActionType.ROLLBACK:
        return _rollback(due, obj, facts, key)
    return _scale(due, obj, facts, key)


def _rollback(due: Due, obj: cabc.Mapping[str, Any], facts: Facts, key: str) -> Change:
    """``kubectl rollout undo``: the template of the ReplicaSet with the second-highest revision."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind, name, ns = obj.get("kind", ""), meta.get("name", ""), meta.get("namespace", "")
    rule = due.action.rollback or runbook.Rollback()
    if kind == "StatefulSet":
        return _rollback_statefulset(due, obj, facts, key, rule)
    if kind != "Deployment":
        raise refuse(due, "RollbackUnsupported", f"rollback works on Deployments and StatefulSets, not on a {kind}")
    owned = sorted(
        ((revision(rs), rs) for rs in facts.replica_sets if _owned_by(rs, meta.get("uid", "")) and revision(rs) > 0),
        key=lambda pair: pair[0],
    )
    if len(owned) < 2:
        raise refuse(
            due, "NoPreviousRevision", f"Deployment {name} has {len(owned)} revision(s): nothing to roll back to"
        )
    current_rev = int((meta.get("annotations") or {}).get(REVISION, "0") or 0) or owned[-1][0]
    current = next((rs for r, rs in owned if r == current_rev), owned[-1][1])
    created = timestamps.parse((current.get("metadata") or {}).get("creationTimestamp"))
    within = durations.parse(rule.if_changed_within)
    if created is None or facts.now - created > within:
        when = created.isoformat() if created else "an unknown time"
        raise refuse(
            due,
            "NotChangedRecently",
            f"Deployment {name}'s template last changed at {when} (revision {current_rev}), "
            f"not within {rule.if_changed_within}",
        )
    earlier = [(r, rs) for r, rs in owned if r < current_rev]
    if not earlier:
        raise refuse(due, "NoPreviousRevision", f"no revision of Deployment {name} before {current_rev}")
    prev_rev, previous = earlier[-1]
    template = copy.deepcopy(dict((previous.get("spec") or {}).get("template") or {}))
    labels = (template.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    current_template = spec.get("template") or {}
    if _without_hash(template) == _without_hash(current_template):
        raise refuse(
            due,
            "AlreadyAtPreviousRevision",
            f"Deployment {name}'s template already matches revision {prev_rev}",
        )
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in ANNOTATIONS_TO_SKIP}
    rs_annotations = (previous.get("metadata") or {}).get("annotations") or {}
    annotations.update({k: v for k, v in rs_annotations.items() if k not in ANNOTATIONS_TO_SKIP})
    annotations[MARKER] = key
    ops = (
        {"op": "test", "path": "/spec/template", "value": current_template},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    )
    before = f"revision {current_rev} ({_images(current_template)})"
    after = f"revision {prev_rev} ({_images(template)})"
    summary = f"roll back Deployment {name} from {before} to {after}"
    return Change(kind, ns, name, ops, before, after, summary, template)


def _rollback_statefulset(
    due: Due, obj: cabc.Mapping[str, Any], facts: Facts, key: str, rule: runbook.Rollback
) -> Change:
    """``kubectl rollout undo`` of a StatefulSet: the ControllerRevision with the second-highest revision.

    kubectl sends that revision's ``data`` (``spec.template`` with ``$patch: replace``) as a
    strategic merge patch; replacing ``/spec/template`` with the same template is the same change.
    """
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    name, ns = meta.get("name", ""), meta.get("namespace", "")
    owned = sorted(
        ((int(cr.get("revision") or 0), cr) for cr in facts.controller_revisions if _owned_by(cr, meta.get("uid", ""))),
        key=lambda pair: pair[0],
    )
    if len(owned) < 2:
        raise refuse(
            due, "NoPreviousRevision", f"StatefulSet {name} has {len(owned)} revision(s): nothing to roll back to"
        )
    (prev_rev, previous), (current_rev, current) = owned[-2], owned[-1]
    created = timestamps.parse((current.get("metadata") or {}).get("creationTimestamp"))
    if created is None or facts.now - created > durations.parse(rule.if_changed_within):
        when = created.isoformat() if created else "an unknown time"
        raise refuse(
            due,
            "NotChangedRecently",
            f"StatefulSet {name}'s template last changed at {when} (revision {current_rev}), "
            f"not within {rule.if_changed_within}",
        )
    template = copy.deepcopy(dict(((previous.get("data") or {}).get("spec") or {}).get("template") or {}))
    template.pop("$patch", None)
    current_template = spec.get("template") or {}
    if not template:
        raise refuse(due, "NoPreviousRevision", f"ControllerRevision of revision {prev_rev} holds no template")
    if template == current_template:
        raise refuse(
            due, "AlreadyAtPreviousRevision", f"StatefulSet {name}'s template already matches revision {prev_rev}"
        )
    ops = (
        {"op": "test", "path": "/spec/template", "value": current_template},
        {"op": "replace", "path": "/spec/template", "value": template},
        *_marker_ops(meta, key),
    )
    before = f"revision {current_rev} ({_images(current_template)})"
    after = f"revision {prev_rev} ({_images(template)})"
    summary = f"roll back StatefulSet {name} from {before} to {after}"
    return Change("StatefulSet", ns, name, ops, before, after, summary, template)


def _scale(due: Due, obj: cabc.Mapping[str, Any], facts: Facts, key: str) -> Change:
    rule = due.action.scale
    assert rule is not None
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    kind, name, ns = obj.get("kind", ""), meta.get("name", ""), meta.get("namespace", "")
    hpa = next((h for h in facts.hpas if _targets(h, kind, name)), None)
    if hpa is not None:
        hpa_name = (hpa.get("metadata") or {}).get("name", "")
        raise refuse(
            due, "HPAManaged", f"HorizontalPodAutoscaler {hpa_name} scales {kind} {name}: it would undo the change"
        )
    replicas = int(spec.get("replicas", 1))
    if replicas >= rule.max_replicas:
        raise refuse(due, "AtMaxReplicas", f"{kind} {name} has {replicas} replicas, maxReplicas is {rule.max_replicas}")
    new = min(replicas + rule.step, rule.max_replicas)
    ops = (
        {"op": "test", "path": "/spec/replicas", "value": replicas},
        {"op": "replace", "path": "/spec/replicas", "value": new},
        *_marker_ops(meta, key),
    )
    summary = f"scale {kind} {name} from {replicas} to {new} replicas (maxReplicas {rule.max_replicas})"
    return Change(kind, ns, name, ops, f"replicas={replicas}", f"replicas={new}", summary)


def revision(rs: cabc.Mapping[str, Any]) -> int:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "")
    return int(text) if str(text).isdigit() else 0


def _owned_by(obj: cabc.Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return bool(uid) and any(r.get("uid") == uid and r.get("controller") for r in refs)


def _targets(hpa: cabc.Mapping[str, Any], kind: str, name: str) -> bool:
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    return bool(ref.get("kind") == kind and ref.get("name") == name)


def _without_hash(template: cabc.Mapping[str, Any]) -> Any:
    out = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
    return out


def _images(template: cabc.Mapping[str, Any]) -> str:
    containers = (template.get("spec") or {}).get("containers") or ()
    return ", ".join(f"{c.get('name', '')}={c.get('image', '')}" for c in containers)[:400]


def _marker_ops(meta: cabc.Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return guardrails.marker_ops(meta.get("annotations"), meta.get("resourceVersion", ""), MARKER, key)
