"""The in-memory indices of Schedules, Policies and Runbooks, and the verdicts read from them.

Kopf keeps an index of every Schedule, Policy and Runbook spec (registered in
:mod:`oncall_operator.handlers.objects`); the flows here read them through :class:`Indices`,
so a check of references, the choice of a Runbook or the policy of an Incident costs no API
call. Kopf fills an index from its first listing before it calls any resource handler, so
``filled`` is set by the first call of one (:meth:`Indices.mark_filled`), or found empty
(:func:`until_filled`, which the Incident watch waits for); until then a reader that must not
miss an object lists it from the API instead (:func:`runbook_candidates`).
"""

import asyncio
import collections.abc as cabc
import contextlib
import dataclasses
import datetime as dt
import sys
from typing import Any

import pydantic

from oncall_operator.adapters import apiserver, listwatch
from oncall_operator.api import GROUP, VERSION, base, incident, kinds, policy, runbook
from oncall_operator.domain import checks, conditions, heartbeats, maintenance, matching, tenancy
from oncall_operator.executor import page_budget

SpecIndex = cabc.Mapping[tuple[str | None, str], Any]
"""Kopf's index: (namespace, name) -> a store holding the parsed spec (None when it does not parse)."""
Candidate = tuple[str, str, runbook.RunbookSpec | None]
RunbookSpec = runbook.RunbookSpec


class Homes(dict[str, tuple[str, ...]]):
    """The namespaces of every Incident name: the intake opens a new alert group without a read first.

    Fed by the Incident events (:mod:`.incident_events`), not a Kopf index: an index on Incidents
    makes Kopf's listing cost grow with the square of the open Incidents (issue 18). An Incident not
    seen yet (its listing still running) costs the intake's create a 409 and a read, never a second
    Incident. A name's namespaces are a tuple: nearly always one, and a set costs 216 bytes for every
    open Incident.
    """

    def see(self, namespace: str, name: str) -> None:
        found = self.get(name, ())
        if namespace not in found:
            self[name] = (*found, namespace)

    def forget(self, namespace: str, name: str) -> None:
        found = self.get(name)
        if found is not None and namespace in found:
            rest = tuple(ns for ns in found if ns != namespace)
            if rest:
                self[name] = rest
            else:
                del self[name]


@dataclasses.dataclass
class Indices:
    policies: SpecIndex
    runbooks: SpecIndex
    schedules: SpecIndex
    operator_namespace: str = "oncall-system"
    """Where the default Runbooks and Policies live: the one other namespace a reference may name."""
    filled: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    windows: SpecIndex = dataclasses.field(default_factory=dict)
    """MaintenanceWindows (:mod:`oncall_operator.handlers.quiet`)."""
    heartbeat_specs: SpecIndex = dataclasses.field(default_factory=dict)
    """Heartbeats (:mod:`oncall_operator.handlers.quiet`)."""
    pages: page_budget.Ledger = dataclasses.field(default_factory=page_budget.Ledger)
    """The page budget's entries of every Incident (:mod:`oncall_operator.executor.incident_events`)."""
    homes: Homes = dataclasses.field(default_factory=Homes)
    """Every Incident name's namespaces (:mod:`oncall_operator.executor.incident_events`)."""
    generation: int = 0
    """Bumped on every change of a Schedule, Policy or Runbook: decisions taken before may differ now."""

    def mark_filled(self, changed: bool = False) -> None:
        """Called from resource handlers: Kopf runs them only once every index holds its first listing.

        ``changed``: an indexed object changed, so looks taken before are stale.
        """
        if not self.filled.is_set():
            self.filled.set()
        if changed:
            self.generation += 1

    def runbook_candidates(self) -> list[Candidate] | None:
        """Every Runbook as (namespace, name, spec or None), or None while the index may be incomplete."""
        if not self.filled.is_set():
            return None
        return [(ns or "", name, next(iter(store), None)) for (ns, name), store in self.runbooks.items()]

    def runbook(self, namespace: str, name: str) -> runbook.RunbookSpec | None:
        return lookup(self.runbooks, namespace, [name]).get(name)

    def runbook_of(self, inc: incident.Incident) -> tuple[str, RunbookSpec] | None:
        """(namespace, spec) of the Incident's Runbook; None too when the ref names another tenant's namespace."""
        return self.runbook_for(inc.metadata.namespace, inc.spec.runbook_ref)

    def runbook_for(self, namespace: str, ref: base.ObjectRef | None) -> tuple[str, RunbookSpec] | None:
        """:meth:`runbook_of` for the Incident in ``namespace`` whose spec names ``ref``."""
        where = tenancy.ref_namespace(namespace, ref, self.operator_namespace) if ref else None
        found = self.runbook(where, ref.name) if ref is not None and where else None
        return None if found is None or where is None else (where, found)

    def runbook_policy(self, namespace: str, name: str) -> tuple[str, str] | None:
        """(namespace, name) of the policy a Runbook names, for the page budget's grouping."""
        found = self.runbook(namespace, name)
        ref = found.escalation_policy_ref if found is not None else None
        return None if ref is None else (namespace, ref.name)

    def heartbeat_list(self) -> list[heartbeats.Heartbeat]:
        return [
            heartbeats.Heartbeat(ns or "", name, spec)
            for (ns, name), store in list(self.heartbeat_specs.items())
            if (spec := next(iter(store), None)) is not None
        ]

    def muted(
        self,
        what: maintenance.Mutes,
        namespace: str,
        labels: cabc.Mapping[str, str],
        workload_labels: cabc.Mapping[str, str] | None,
        operator_namespace: str,
        now: Any,
    ) -> maintenance.Mute | None:
        """The maintenance window muting ``what`` there now, from the index (no API call)."""
        return maintenance.muted(self.window_list(), what, namespace, labels, workload_labels, operator_namespace, now)

    def window_list(self) -> list[maintenance.Window]:
        return [
            maintenance.Window(ns or "", name, spec)
            for (ns, name), store in list(self.windows.items())
            if (spec := next(iter(store), None)) is not None
        ]

    def verdict(self, spec: incident.IncidentSpec, namespace: str) -> conditions.Verdict:
        """Whether the Incident's references resolve (its own check, from the indices: no API call)."""
        pref, rref = spec.escalation_policy_ref, spec.runbook_ref  # in the Incident's namespace unless they say
        policies = lookup(self.policies, (pref and pref.namespace) or namespace, [pref.name] if pref else [])
        runbooks = lookup(self.runbooks, (rref and rref.namespace) or namespace, [rref.name] if rref else [])
        return checks.check_incident(spec, policies, runbooks, namespace, self.operator_namespace)

    def verdict_when_filled(self, spec: incident.IncidentSpec, namespace: str) -> conditions.Verdict | None:
        """:meth:`verdict`, or None while the indices may still miss what the Incident names."""
        return self.verdict(spec, namespace) if self.filled.is_set() else None

    def policy_for(self, inc: incident.Incident) -> tuple[str, policy.EscalationPolicySpec] | None:
        """(namespace, spec) of the Incident's escalation policy: its own ref, else its runbook's."""
        ns = inc.metadata.namespace
        ref: Any = inc.spec.escalation_policy_ref
        if ref is None and inc.spec.runbook_ref is not None:
            rb_ref = inc.spec.runbook_ref
            rb_ns = tenancy.ref_namespace(ns, rb_ref, self.operator_namespace) or ""
            found = self.runbook(rb_ns, rb_ref.name) if rb_ns else None
            if found is None or found.escalation_policy_ref is None:
                return None
            ref, ns = found.escalation_policy_ref, rb_ns
        if ref is None:
            return None
        if tenancy.ref_refusal("", inc.metadata.namespace, getattr(ref, "namespace", None), self.operator_namespace):
            return None  # another tenant's policy: never used (the Incident's Ready says why)
        ns = getattr(ref, "namespace", None) or ns
        spec = lookup(self.policies, ns, [ref.name]).get(ref.name)
        return None if spec is None else (ns, spec)


INDEXED = (kinds.SCHEDULE, kinds.POLICY, kinds.RUNBOOK, kinds.MAINTENANCE, kinds.HEARTBEAT)
"""The kinds Kopf indexes: every one of them has a handler that marks the indices filled."""
FILLED_POLL = 2.0
"""Seconds :func:`until_filled` waits for a Kopf handler before it asks whether there is anything to index."""


async def until_filled(found: Indices, api: apiserver.Api, scope: cabc.Sequence[str]) -> None:
    """Return once Kopf's indices hold their first listing, so that no flow reads an index half filled.

    Kopf calls no resource handler before every index is filled, and each indexed kind's handler
    marks them filled (:meth:`Indices.mark_filled`). When there is no object of any indexed kind in
    ``scope``, no handler is ever called: then the indices are filled because they are empty.
    """
    while not found.filled.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(found.filled.wait(), FILLED_POLL)
        if not found.filled.is_set() and not await _any_indexed(api, scope):
            found.mark_filled()


async def _any_indexed(api: apiserver.Api, scope: cabc.Sequence[str]) -> bool:
    """Whether any object of an indexed kind is in ``scope`` (Kopf's handler will mark the indices filled)."""
    for kind in INDEXED:
        for path in listwatch.paths(scope, f"/apis/{GROUP}/{VERSION}", kind.plural):
            async for page in api.pages(path):
                for item in page.get("items") or ():
                    if matching.in_scope((item.get("metadata") or {}).get("namespace", ""), scope):
                        return True
    return False


def parse(model: type[pydantic.BaseModel], spec: cabc.Mapping[str, Any]) -> Any:
    """A spec for an index: the model, or None when it does not parse (its Ready check says why)."""
    try:
        return model.model_validate(dict(spec))
    except pydantic.ValidationError:
        return None


def lookup(index: SpecIndex, namespace: str, names: cabc.Iterable[str]) -> dict[str, Any]:
    """The parsed specs of the named objects that exist in ``namespace``."""
    found = {}
    for name in names:
        store = index.get((namespace, name))
        spec = next(iter(store), None) if store is not None else None
        if spec is not None:
            found[name] = spec
    return found


async def runbook_candidates(indices: Indices, api: apiserver.Api, namespaces: cabc.Iterable[str]) -> list[Candidate]:
    """The index's Runbooks; until it is filled, the Runbooks of ``namespaces`` listed from the API."""
    indexed = indices.runbook_candidates()
    if indexed is not None:
        return indexed
    found: list[Candidate] = []
    for ns in dict.fromkeys(namespaces):
        found += await list_runbooks(api, ns)
    return found


async def list_runbooks(api: apiserver.Api, namespace: str) -> list[Candidate]:
    """Every Runbook of ``namespace`` as (namespace, name, spec); a spec that does not parse is None."""
    listed = await api.call("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{kinds.RUNBOOK.plural}") or {}
    out: list[Candidate] = []
    for item in listed.get("items", []):
        try:
            spec: runbook.RunbookSpec | None = runbook.RunbookSpec.model_validate(item.get("spec") or {})
        except pydantic.ValidationError:
            spec = None
        out.append((namespace, item["metadata"]["name"], spec))
    return out


def see_incident(found: Indices, body: cabc.Mapping[str, Any], deleted: bool = False) -> None:
    """An Incident event: its name's home, and its part of its policy's page budget (from the raw body)."""
    meta = body["metadata"]
    namespace, name = sys.intern(meta["namespace"]), sys.intern(meta["name"])  # shared with every other keeper
    ref = sys.intern(f"{namespace}/{name}")
    if deleted:
        found.homes.forget(namespace, name)
        found.pages.forget(ref)
        return
    found.homes.see(namespace, name)
    now = dt.datetime.now(dt.UTC)
    entry = page_budget.index_entry(
        namespace, name, body.get("spec") or {}, body.get("status") or {}, now, found.operator_namespace
    )
    found.pages.see(ref, entry)
