"""The page budget's memory: every Incident's part of it, per policy, and the decision run through it.

:mod:`oncall_operator.domain.page_budget` decides from the entries of the policy's Incidents.
They come from every Incident event (:func:`index_entry`, fed by
:mod:`oncall_operator.executor.incident_events`), from one paged list of the Incidents before the first
decision under a budget (:func:`ready`: the Incident watch's listing hands Incidents over page by
page while the first looks already run, and a restarted operator deciding before it has seen an
Incident's page would page over the budget), and from what this process wrote in the last
:data:`RECENT_SECONDS` (the index follows a write only when its event arrives, and two Incidents
looked at in between must not both take a person's last page). With no budget in any policy, nothing is listed.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import logging
import time
from typing import Any

import pydantic

from oncall_operator.adapters import apiserver, listwatch, peering
from oncall_operator.api import GROUP, VERSION, incident, kinds, policy
from oncall_operator.domain import delivery, escalation, matching, page_budget

log = logging.getLogger(__name__)

LedgerKey = tuple[str, str, str, str]
"""(``policy`` or ``runbook``, its namespace, its name, the Incident's namespace).

The Incident's namespace is part of the key: Incidents of one namespace share a budget per
policy, and a tenant's flood of Incidents through the operator's shared policy never holds
another tenant's pages (the operator's namespace's policy is the one a reference may share)."""
MUTED_KINDS = (*escalation.PAGE_KINDS, page_budget.SUMMARY_KIND)
"""What a maintenance window muting pages holds: the pages, and a summary of held pages too."""
RECENT_SECONDS = 120.0
"""How long this process trusts its own writes over the index (their events arrive long before)."""
READY_SECONDS = 60.0
"""How long a look waits for the list of Incidents (:func:`ready`) before it fails and is retried."""


def ledger_key(namespace: str, spec: cabc.Mapping[str, Any]) -> LedgerKey | None:
    """How the Incident (its raw spec) names its policy: its own ref, else its runbook's."""
    for field, kind in (("escalationPolicyRef", "policy"), ("runbookRef", "runbook")):
        ref = spec.get(field)
        if isinstance(ref, cabc.Mapping) and ref.get("name"):
            return (kind, str(ref.get("namespace") or namespace), str(ref["name"]), namespace)
    return None


def _relevant(status: cabc.Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether an Incident has anything for the budget (cheap, on the raw status: most have not)."""
    notes = (status.get("escalation") or {}).get("notifications") or []
    for n in notes:
        if not isinstance(n, cabc.Mapping):
            continue
        if n.get("result") == page_budget.HELD or n.get("kind") == page_budget.SUMMARY_KIND:
            return True
        if n.get("kind") in escalation.PAGE_KINDS:
            try:
                if now - dt.datetime.fromisoformat(str(n.get("at"))) < page_budget.HOUR:
                    return True
            except (ValueError, TypeError):
                continue
    return False


def index_entry(
    namespace: str,
    name: str,
    spec: cabc.Mapping[str, Any],
    status: cabc.Mapping[str, Any],
    now: dt.datetime,
    operator_namespace: str,
) -> dict[LedgerKey, tuple[page_budget.Entry, ...]]:
    """The Kopf index's value for one Incident: its budget entries under its policy's key; nothing when none.

    An Incident naming another tenant's policy (or runbook) counts nowhere: it is never escalated either.
    """
    key = ledger_key(namespace, spec)
    if key is None or key[1] not in (namespace, operator_namespace) or not _relevant(status, now):
        return {}
    notes = (status.get("escalation") or {}).get("notifications") or []
    try:  # the notifications only, all the budget reads: not the timeline, up to 1,000 entries (issue 18)
        parsed = incident.IncidentStatus.model_validate({"escalation": {"notifications": notes}})
    except pydantic.ValidationError:
        return {}
    found = page_budget.entries(f"{namespace}/{name}", parsed, now)
    return {key: found} if found else {}


@dataclasses.dataclass
class Ledger:
    """Every Incident's entries by policy key (fed by the Incident events), and this process's latest writes.

    Not a Kopf index: an index on Incidents makes Kopf's listing cost grow with the square of the
    open Incidents (a readiness toggle per object, each waking every waiting worker: a takeover
    with 5,000 open took 4 minutes, issue 18). The Incident watch's listing is not over before the
    first looks run, so the first decision under a budget waits for a list of its own (:func:`ready`).
    """

    index: dict[LedgerKey, dict[str, tuple[page_budget.Entry, ...]]] = dataclasses.field(default_factory=dict)
    recent: dict[str, tuple[float, LedgerKey, tuple[page_budget.Entry, ...]]] = dataclasses.field(default_factory=dict)
    _keys: dict[str, LedgerKey] = dataclasses.field(default_factory=dict)
    listed_term: int | None = None
    """The acting term (:func:`peering.term <oncall_operator.adapters.peering.term>`) in which every
    Incident was listed (:func:`ready`); None: never. A list of an earlier term may miss what the
    replica acting meanwhile wrote."""
    _touched: set[str] = dataclasses.field(default_factory=set)
    """Incidents the handler saw (or saw deleted) while the list ran: maybe newer than what the list says."""
    listing: "asyncio.Task[None] | None" = None
    """The list of every Incident (:func:`ready`), while it runs and after."""

    def see(self, ref: str, found: cabc.Mapping[LedgerKey, tuple[page_budget.Entry, ...]]) -> None:
        """One Incident's entries (:func:`index_entry`), replacing what it had."""
        self.forget(ref)
        for key, entries in found.items():
            self.index.setdefault(key, {})[ref] = entries
            self._keys[ref] = key

    def listed(self, ref: str, found: cabc.Mapping[LedgerKey, tuple[page_budget.Entry, ...]]) -> None:
        """One Incident's entries from the list: kept unless the handler has seen the Incident since."""
        if ref not in self._touched:
            self.see(ref, found)
            self._touched.discard(ref)

    def current(self) -> bool:
        """Whether the index holds the whole budget: listed in this acting term."""
        return self.listed_term == peering.term()

    def forget(self, ref: str) -> None:
        if self.listing is not None and not self.listing.done():  # a list is running: this event may be newer
            self._touched.add(ref)
        key = self._keys.pop(ref, None)
        if key is not None and (held := self.index.get(key)) is not None:
            held.pop(ref, None)
            if not held:
                del self.index[key]

    def note(self, ref: str, key: LedgerKey, found: tuple[page_budget.Entry, ...]) -> None:
        self.recent[ref] = (time.monotonic(), key, found)

    def others(self, keys: cabc.Collection[LedgerKey]) -> list[page_budget.Entry]:
        """The entries of every Incident under ``keys``: this process's recent writes win over the index."""
        fresh = time.monotonic() - RECENT_SECONDS
        for ref, (at, _, _) in list(self.recent.items()):
            if at < fresh:
                del self.recent[ref]
        mine = {ref: found for ref, (_, key, found) in self.recent.items() if key in keys}
        out = [e for found in mine.values() for e in found]
        for key in keys:
            for found in list(self.index.get(key, {}).values()):
                out += [e for e in found if e.incident not in mine]
        return out

    def keys(self) -> list[LedgerKey]:
        return list(self.index.keys()) + [key for _, key, _ in self.recent.values()]


def in_play(spec: policy.EscalationPolicySpec, status: incident.IncidentStatus | None) -> bool:
    """Whether a decision under ``spec`` reads the budget: the policy has a cap, or the Incident holds a page."""
    if spec.noise.max_pages_per_person_per_hour is not None:
        return True
    notes = status.escalation.notifications if status is not None else ()
    return any(n.result == page_budget.HELD for n in notes)


async def ready(
    ledger: Ledger, api: apiserver.Api, scope: cabc.Sequence[str], operator_namespace: str, page: int = apiserver.PAGE
) -> None:
    """Return once every Incident in ``scope`` has been listed into ``ledger`` (once per acting term).

    One task lists for every waiter; a failed list fails the waiting looks (their loop retries them)
    and the next look starts it again. :class:`TimeoutError` after :data:`READY_SECONDS`.
    """
    if ledger.current():
        return
    if ledger.listing is None or ledger.listing.done():
        ledger.listing = asyncio.create_task(_prime(ledger, api, scope, operator_namespace, page), name="page budget")
    await asyncio.wait_for(asyncio.shield(ledger.listing), READY_SECONDS)


async def _prime(ledger: Ledger, api: apiserver.Api, scope: cabc.Sequence[str], home: str, page: int) -> None:
    count, term = 0, peering.term()
    for path in listwatch.paths(scope, f"/apis/{GROUP}/{VERSION}", kinds.INCIDENT.plural):
        async for listed in api.pages(path, page):
            now = dt.datetime.now(dt.UTC)
            for item in listed.get("items") or ():
                meta = item.get("metadata") or {}
                namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
                if not matching.in_scope(namespace, scope):
                    continue
                found = index_entry(namespace, name, item.get("spec") or {}, item.get("status") or {}, now, home)
                ledger.listed(f"{namespace}/{name}", found)
                count += 1
    ledger.listed_term = term
    ledger._touched.clear()
    log.info("page budget: %d Incidents listed", count)


async def stop(ledger: Ledger) -> None:
    """Cancel a list still running (at shutdown)."""
    if ledger.listing is not None:
        task, ledger.listing = ledger.listing, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def budgeted(
    ledger: Ledger,
    runbook_policy: cabc.Callable[[str, str], tuple[str, str] | None],
    spec: policy.EscalationPolicySpec,
    body: cabc.Mapping[str, Any],
    before: incident.IncidentStatus,
    decision: escalation.Decision,
    now: dt.datetime,
    resolve: escalation.Resolver,
    who: delivery.Claimant,
    remember: bool = False,
) -> escalation.Decision:
    """``decision`` under the policy's page budget; ``remember``: it is being written, so count it from now on."""
    cap = spec.noise.max_pages_per_person_per_hour
    held = any(n.result == page_budget.HELD for n in decision.status.escalation.notifications)
    meta = body["metadata"]
    key = ledger_key(meta["namespace"], body.get("spec") or {})
    if key is None or (cap is None and not held):
        return decision
    target = _policy_of(key, runbook_policy)
    known = set(ledger.keys())
    keys = {key} if target is None else {k for k in known if k[3] == key[3] and _policy_of(k, runbook_policy) == target}
    keys.add(key)
    ref = f"{meta['namespace']}/{meta['name']}"
    before_keys = {n.key for n in before.escalation.notifications}
    others = ledger.others(keys)
    out = page_budget.apply(decision.status, decision.sends, before_keys, others, ref, cap, now, resolve, who)
    if remember:
        ledger.note(ref, key, page_budget.entries(ref, out.status, now))
    wake = min((t for t in (decision.wake_at, out.wake_at) if t is not None), default=None)
    return escalation.Decision(out.status, out.sends, wake)


def marked(before: incident.IncidentStatus, after: incident.IncidentStatus) -> bool:
    """Whether the budget changed a notification's result (held pages now counted in a summary): worth a write."""
    results = [n.result for n in before.escalation.notifications]
    return results != [n.result for n in after.escalation.notifications][: len(results)]


def _policy_of(key: LedgerKey, runbook_policy: cabc.Callable[[str, str], tuple[str, str] | None]) -> Any:
    if key[0] == "policy":
        return key[1:]
    return runbook_policy(key[1], key[2])
