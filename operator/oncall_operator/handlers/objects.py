"""Schedules, policies and runbooks: check what the schema cannot, and say so in ``Ready``.

Kopf indexes keep the latest spec of every schedule, policy and runbook in memory, so a check
of references costs no API call; a timer re-checks each object so that a reference that
appears later (the schedule applied after its policy) turns ``Ready`` true by itself.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
from typing import Any

import kopf
import pydantic

from oncall_operator.api import GROUP, VERSION, base, incident, kinds, policy, runbook, schedule
from oncall_operator.domain import checks, conditions, schedules
from oncall_operator.handlers import settings

RECHECK = settings.CONFIG.recheck_seconds
SpecIndex = kopf.Index[tuple[str | None, str], Any]


def _parse(model: type[pydantic.BaseModel], spec: cabc.Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(dict(spec))
    except pydantic.ValidationError:
        return None


@kopf.index(GROUP, VERSION, kinds.SCHEDULE.plural)
def schedule_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): _parse(schedule.OnCallScheduleSpec, spec)}


@kopf.index(GROUP, VERSION, kinds.POLICY.plural)
def policy_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): _parse(policy.EscalationPolicySpec, spec)}


@kopf.index(GROUP, VERSION, kinds.RUNBOOK.plural)
def runbook_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): _parse(runbook.RunbookSpec, spec)}


@dataclasses.dataclass
class Indices:
    """The three indices, for the operator's own loops (the pod watch, the intake, the escalation
    scheduler), which Kopf does not call as handlers and so does not hand its indices to.

    Kopf fills an index from its first listing before it calls any resource handler, so
    ``filled`` is set by the first call of one (:func:`mark_filled`); until then a reader that
    must not miss an object lists it from the API instead.
    """

    policies: SpecIndex
    runbooks: SpecIndex
    schedules: SpecIndex
    filled: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    generation: int = 0
    """Bumped on every change of a Schedule, Policy or Runbook: decisions taken before may differ now."""

    def runbook_candidates(self) -> list[tuple[str, str, Any]] | None:
        """Every Runbook as (namespace, name, spec or None), or None while the index may be incomplete."""
        if not self.filled.is_set():
            return None
        return [(ns or "", name, next(iter(store), None)) for (ns, name), store in self.runbooks.items()]


@kopf.on.startup()
async def keep_indices(memo: Any, **kwargs: Any) -> None:
    memo.indices = Indices(kwargs["policy_specs"], kwargs["runbook_specs"], kwargs["schedule_specs"])


def mark_filled(memo: Any, changed: bool = False) -> None:
    """Called from resource handlers: Kopf runs them only once every index holds its first listing.

    ``changed``: an indexed object changed (its handler calls this), so looks taken before are stale.
    """
    indices: Indices | None = getattr(memo, "indices", None)
    if indices is None:
        return
    if not indices.filled.is_set():
        indices.filled.set()
    if changed:
        indices.generation += 1


def lookup(index: SpecIndex, namespace: str, names: cabc.Iterable[str]) -> dict[str, Any]:
    """The parsed specs of the named objects that exist in ``namespace``."""
    found = {}
    for name in names:
        store = index.get((namespace, name))
        spec = next(iter(store), None) if store is not None else None
        if spec is not None:
            found[name] = spec
    return found


def incident_verdict(indices: "Indices", spec: incident.IncidentSpec, namespace: str) -> conditions.Verdict:
    """Whether the Incident's references resolve (its own check, from the indices: no API call)."""
    pref, rref = spec.escalation_policy_ref, spec.runbook_ref  # in the Incident's namespace unless they say
    policies = lookup(indices.policies, (pref and pref.namespace) or namespace, [pref.name] if pref else [])
    runbooks = lookup(indices.runbooks, (rref and rref.namespace) or namespace, [rref.name] if rref else [])
    return checks.check_incident(spec, policies, runbooks)


def ready_when_filled(indices: "Indices") -> cabc.Callable[[incident.IncidentSpec, str], conditions.Verdict | None]:
    """:func:`incident_verdict`, or None while the indices may still miss what the Incident names."""

    def verdict(spec: incident.IncidentSpec, namespace: str) -> conditions.Verdict | None:
        return incident_verdict(indices, spec, namespace) if indices.filled.is_set() else None

    return verdict


async def write_ready(
    kind: kinds.Kind,
    body: kopf.Body,
    memo: Any,
    verdict: conditions.Verdict,
    more: cabc.Mapping[str, conditions.Verdict] | None = None,
    fields: cabc.Mapping[str, Any] | None = None,
) -> None:
    """Write ``Ready`` (and ``more`` conditions, and status ``fields``) when any changed; Event on a flip."""
    status = body.get("status") or {}
    old = [base.Condition.model_validate(c) for c in status.get("conditions") or []]
    generation = body["metadata"].get("generation")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    new = conditions.ready(old, verdict, generation, now)
    for type_, extra in (more or {}).items():
        new = conditions.put(new, type_, _status_of(extra), extra.reason, extra.message, generation, now)
    unchanged = all(status.get(k) == v for k, v in (fields or {}).items())
    if conditions.same(old, new) and status.get("observedGeneration") == generation and unchanged:
        return
    meta = body["metadata"]
    patch = {**(fields or {}), "observedGeneration": generation, "conditions": [c.wire() for c in new]}
    written = await asyncio.to_thread(
        memo.kube.patch_status, kind.plural, meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
    )
    if not written:
        return  # changed meanwhile: the next event (or recheck) decides on the newer object
    for type_, verdict_ in [(conditions.READY, verdict), *(more or {}).items()]:
        was = next((c.status for c in old if c.type == type_), None)
        if was != _status_of(verdict_):
            (kopf.info if verdict_.ok else kopf.warn)(body, reason=verdict_.reason, message=verdict_.message)


def _status_of(verdict: conditions.Verdict) -> base.ConditionStatus:
    return base.ConditionStatus.TRUE if verdict.ok else base.ConditionStatus.FALSE


def _schedule_refs(spec: policy.EscalationPolicySpec) -> set[str]:
    targets = [t for level in spec.levels for t in level.targets] + [r.target for r in spec.routes]
    return {t.schedule.name for t in targets if t.schedule is not None}


async def check_schedule(body: kopf.Body, memo: Any) -> None:
    """Ready, and who is on call now, the next handoff and the coverage of the next 14 days."""
    spec = schedule.OnCallScheduleSpec.model_validate(dict(body["spec"]))
    verdict = checks.check_schedule(spec)
    if not verdict.ok:  # an unknown zone: nobody can be resolved
        await write_ready(kinds.SCHEDULE, body, memo, verdict)
        return
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    found = schedules.status(spec, now)
    fields = found.wire()
    fields.pop("conditions", None)
    coverage = schedules.coverage_verdict(found.gaps)
    await write_ready(kinds.SCHEDULE, body, memo, verdict, {"Covered": coverage}, fields)


async def check_policy(body: kopf.Body, memo: Any, schedules: SpecIndex) -> None:
    spec = policy.EscalationPolicySpec.model_validate(dict(body["spec"]))
    namespace = body["metadata"]["namespace"]
    found = lookup(schedules, namespace, _schedule_refs(spec))
    secrets: dict[str, frozenset[str]] = {}
    forbidden: set[str] = set()
    for name in checks.secret_names(spec, found):
        try:
            keys = await asyncio.to_thread(memo.kube.secret_keys, namespace, name)
        except PermissionError:
            forbidden.add(name)
            continue
        if keys is not None:
            secrets[name] = keys
    await write_ready(kinds.POLICY, body, memo, checks.check_policy(spec, found, secrets, frozenset(forbidden)))


async def check_runbook(body: kopf.Body, memo: Any, policies: SpecIndex) -> None:
    spec = runbook.RunbookSpec.model_validate(dict(body["spec"]))
    refs = [spec.escalation_policy_ref.name] if spec.escalation_policy_ref else []
    found = lookup(policies, body["metadata"]["namespace"], refs)
    await write_ready(kinds.RUNBOOK, body, memo, checks.check_runbook(spec, found))


@kopf.on.event(GROUP, VERSION, kinds.SCHEDULE.plural)
async def schedule_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    mark_filled(memo, changed=True)
    if type != "DELETED":
        await check_schedule(body, memo)


@kopf.timer(GROUP, VERSION, kinds.SCHEDULE.plural, interval=RECHECK)
async def schedule_recheck(body: kopf.Body, memo: Any, **_: Any) -> None:
    await check_schedule(body, memo)


@kopf.on.event(GROUP, VERSION, kinds.POLICY.plural)
async def policy_changed(type: str, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    mark_filled(memo, changed=True)
    if type != "DELETED":
        await check_policy(body, memo, kwargs["schedule_specs"])


@kopf.timer(GROUP, VERSION, kinds.POLICY.plural, interval=RECHECK)
async def policy_recheck(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    await check_policy(body, memo, kwargs["schedule_specs"])


@kopf.on.event(GROUP, VERSION, kinds.RUNBOOK.plural)
async def runbook_changed(type: str, body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    mark_filled(memo, changed=True)
    if type != "DELETED":
        await check_runbook(body, memo, kwargs["policy_specs"])


@kopf.timer(GROUP, VERSION, kinds.RUNBOOK.plural, interval=RECHECK)
async def runbook_recheck(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    await check_runbook(body, memo, kwargs["policy_specs"])
