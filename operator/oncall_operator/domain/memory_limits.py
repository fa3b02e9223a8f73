"""How much memory to give a container after an OOM kill, where the workload cannot be patched too.

VPA's rule for the new limit, and the two cases where there is no limit to raise in a template:
a pod that no template makes (a bare Pod, a Job no CronJob owns: the operator recommends and pages,
it never writes a Pod), and a container whose template sets no memory limit (a limit is
recommended from what the kill shows, and written only where the runbook says
``setMissingLimit``). Pure: the kill's facts and the runbook's rule in, words and quantities out.
"""

from fractions import Fraction
from typing import Any

from oncall_operator.api import runbook
from oncall_operator.domain import oom, quantity

NO_TEMPLATE = {"Pod": "a bare Pod", "Job": "a Job that no CronJob owns"}
"""Owners the operator never writes (their pods are made once), with how messages name them."""


def next_limit(old: Fraction, rule: runbook.RaiseMemoryLimit) -> tuple[Fraction, str]:
    """VPA's rule: max(old x factor, old + minStep), rounded up to whole Mi, capped at maxLimit."""
    wanted = max(old * Fraction(str(rule.factor)), old + quantity.parse(rule.min_step))
    cap = quantity.parse(rule.max_limit)
    mib = quantity.ceil_mi(wanted)
    if mib * quantity.MI >= cap:
        return cap, rule.max_limit
    return Fraction(mib * quantity.MI), quantity.mi(mib)


def basis(template_request: str | None, kill: oom.Kill) -> tuple[str, str] | None:
    """What a missing limit is worked out from, and how to say it: the limit the pod ran with (a
    LimitRange default), else the template's memory request, else the pod's; None without any."""
    if kill.limit:
        return kill.limit, f"the {kill.limit} limit it ran with"
    if template_request:
        return template_request, f"its request {template_request}"
    if kill.request:
        return kill.request, f"its request {kill.request}"
    return None


def recommended(base: str, rule: runbook.RaiseMemoryLimit) -> str:
    """The limit the rule gives ``base`` (a quantity), never above ``maxLimit``."""
    return next_limit(quantity.parse(base), rule)[1]


def for_pod(kind: str, pod: str, kill: oom.Kill, rule: runbook.RaiseMemoryLimit | None) -> str:
    """The message for a kill the operator may only answer with advice (no template to patch)."""
    what = NO_TEMPLATE.get(kind, f"a {kind}")
    text = f"{what} ({pod}) has no template the operator may patch"
    found = basis(None, kill)
    if rule is None or found is None:
        return f"{text}: set resources.limits.memory of container {kill.container} where the pod is defined"
    base, how = found
    return (
        f"{text}; recommended: recreate it with limits.memory={recommended(base, rule)} for container "
        f"{kill.container} (from {how})"
    )


def raise_ops(
    path: str, name: str, limit: tuple[str, str], request: tuple[str, str] | None
) -> tuple[list[dict[str, Any]], str, str]:
    """The JSON patch raising a container's memory at ``path`` (a pod template's or a pod's), with
    ``test``s on the name and the old values; ``limit`` and ``request`` are (old, new). Also the
    before and after words."""
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": f"{path}/name", "value": name},
        {"op": "test", "path": f"{path}/resources/limits/memory", "value": limit[0]},
        {"op": "replace", "path": f"{path}/resources/limits/memory", "value": limit[1]},
    ]
    before, after = f"limits.memory={limit[0]}", f"limits.memory={limit[1]}"
    if request is not None:
        ops += [
            {"op": "test", "path": f"{path}/resources/requests/memory", "value": request[0]},
            {"op": "replace", "path": f"{path}/resources/requests/memory", "value": request[1]},
        ]
        before, after = f"{before} requests.memory={request[0]}", f"{after} requests.memory={request[1]}"
    return ops, before, after
