"""Which Runbook answers an event: Alertmanager-style matchers over a label set.

Runbook matchers name Prometheus-style labels (``[a-zA-Z_][a-zA-Z0-9_]*``), the same names an
Alertmanager alert for the same OOM carries, so one runbook can serve both triggers. For an OOM
kill the label set is built like kube-state-metrics and kube-prometheus do: ``namespace``,
``pod``, ``container``, ``workload``, ``workload_type``, every Kubernetes label of the pod and
the workload as ``label_<sanitised key>`` and, when the key is already a valid name (``app``,
``team``), under its own name too.

A runbook in the workload's namespace wins over a default in the operator's namespace; within a
namespace the one with the most matchers (the most specific) wins, then the first by name.
"""

import collections.abc as cabc
import dataclasses
import fnmatch
import re

from oncall_operator.api import runbook

_VALID = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclasses.dataclass(frozen=True)
class Chosen:
    namespace: str
    name: str
    spec: runbook.RunbookSpec


def matches(matchers: cabc.Sequence[runbook.Matcher], labels: cabc.Mapping[str, str]) -> bool:
    for m in matchers:
        value = labels.get(m.label, "")
        if m.op == runbook.MatchOp.EQUAL and value != m.value:
            return False
        if m.op == runbook.MatchOp.NOT_EQUAL and value == m.value:
            return False
        if m.op in (runbook.MatchOp.REGEX, runbook.MatchOp.NOT_REGEX):
            try:
                hit = re.fullmatch(m.value, value) is not None
            except re.error:
                return False  # the Runbook's Ready condition reports the bad expression
            if hit != (m.op == runbook.MatchOp.REGEX):
                return False
    return True


def oom_labels(
    namespace: str,
    pod: str,
    container: str,
    workload_kind: str,
    workload: str,
    pod_labels: cabc.Mapping[str, str],
    workload_labels: cabc.Mapping[str, str],
) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in {**workload_labels, **pod_labels}.items():
        out["label_" + _INVALID_CHARS.sub("_", key)] = value
        if _VALID.match(key):
            out[key] = value
    out.update(
        namespace=namespace,
        pod=pod,
        container=container,
        workload=workload,
        workload_type=workload_kind.lower(),
    )
    return out


def select(
    candidates: cabc.Iterable[tuple[str, str, runbook.RunbookSpec | None]],
    event: runbook.TriggerEvent,
    labels: cabc.Mapping[str, str],
    namespaces: cabc.Sequence[str],
) -> Chosen | None:
    """The runbook for ``event``: searched in ``namespaces`` in order (workload's, then operator's)."""
    found: dict[str, list[Chosen]] = {ns: [] for ns in namespaces}
    for namespace, name, spec in candidates:
        if spec is None or namespace not in found or spec.trigger.event != event:
            continue
        if matches(spec.trigger.matchers, labels):
            found[namespace].append(Chosen(namespace, name, spec))
    for namespace in namespaces:
        if found[namespace]:
            return min(found[namespace], key=lambda c: (-len(c.spec.trigger.matchers), c.name))
    return None


def in_scope(namespace: str, patterns: cabc.Sequence[str]) -> bool:
    """Whether the operator's watch scope (``run --namespace``, Kopf's globs, ``!`` excludes) covers it.

    Kopf already watches only these namespaces; this is the second lock on the door, checked
    before anything is read or written for an event.
    """
    if not patterns:
        return True
    includes = [p for p in patterns if not p.startswith("!")]
    excludes = [p[1:] for p in patterns if p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p) for p in excludes):
        return False
    return not includes or any(fnmatch.fnmatchcase(namespace, p) for p in includes)
