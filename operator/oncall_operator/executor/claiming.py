"""Who is paged now and the claim that says so, decided in one place for whoever writes it.

The escalation claims what is due on an Incident in a write of its own. A new alert Incident's
first page is due the moment it opens, and the intake writes the Incident's first status anyway:
claiming the first step in that same write makes a new alert Incident cost three writes (the
create, the opening with its claim, the outcome) instead of four (issue 18). Both writers decide
through :func:`decide`, so the claim is the same whoever makes it; the escalation alone sends
(the intake hands it the claimed steps through :meth:`OpenIncidents.hand
<oncall_operator.executor.open_incidents.OpenIncidents.hand>`), so a slow channel never holds
the intake's answer to Alertmanager.

The intake claims only when the indices answer without I/O that no window mutes the Incident's
pages (a window selecting workloads by label needs the workload read: the escalation decides then)
and, under a page budget, once every Incident has been listed into it (the escalation waits for that).
"""

import collections.abc as cabc
import dataclasses
import datetime as dt
from typing import Any

from oncall_operator.api import incident, policy, schedule
from oncall_operator.api.maintenance import Mutes
from oncall_operator.domain import delivery, escalation, maintenance, schedules
from oncall_operator.executor import context, delivering, indices, page_budget


def resolver(namespace: str, spec: policy.EscalationPolicySpec, index: indices.SpecIndex) -> escalation.Resolver:
    """Targets -> people, from the schedules (and their members' addresses) in the policy's namespace."""
    names = {t.schedule.name for lv in spec.levels for t in lv.targets if t.schedule} | {
        r.target.schedule.name for r in spec.routes if r.target.schedule
    }
    found: dict[str, schedule.OnCallScheduleSpec] = indices.lookup(index, namespace, names)
    members = {m.name: m for s in found.values() for m in s.members}

    def resolve(target: policy.Target, at: dt.datetime) -> list[escalation.Recipient]:
        if target.schedule is not None:
            sched = found.get(target.schedule.name)
            people = schedules.on_call(sched, at).get(target.schedule.role, []) if sched else []
            return [members.get(p) or escalation.Recipient(name=p) for p in people]
        if target.user is not None:
            return [members.get(target.user) or escalation.Recipient(name=target.user)]
        team = next((t for t in spec.teams if t.name == target.team), None)
        return [escalation.Recipient(name=target.team or "team", email=team.email if team else None)]

    return resolve


@dataclasses.dataclass(frozen=True)
class Claimer:
    """One Incident's escalation policy, who its targets are, and who claims: all :func:`decide` needs."""

    namespace: str
    """The policy's namespace (the Secrets of its channels are read there)."""
    spec: policy.EscalationPolicySpec
    resolve: escalation.Resolver
    me: delivery.Claimant
    ledger: page_budget.Ledger
    runbook_policy: cabc.Callable[[str, str], tuple[str, str] | None]


def claimer(ctx: context.Context, inc: incident.Incident) -> Claimer | None:
    """The Incident's :class:`Claimer`, from the indices; None when it has no policy to escalate by."""
    found = ctx.indices.policy_for(inc)
    if found is None:
        return None
    namespace, spec = found
    resolve = resolver(namespace, spec, ctx.indices.schedules)
    return Claimer(namespace, spec, resolve, delivering.claimant(), ctx.indices.pages, ctx.indices.runbook_policy)


def decide(
    c: Claimer,
    before: incident.IncidentStatus,
    current: incident.Incident,
    body: cabc.Mapping[str, Any],
    now: dt.datetime,
    remember: bool = False,
) -> escalation.Decision:
    """The engine's decision under the policy's page budget; ``remember``: it is being written."""
    decision = escalation.decide(c.spec, current, now, c.resolve, c.me)
    return page_budget.budgeted(
        c.ledger, c.runbook_policy, c.spec, body, before, decision, now, c.resolve, c.me, remember
    )


Opening = cabc.Callable[[incident.Incident, cabc.Mapping[str, Any], dt.datetime], escalation.Decision | None]
"""(the Incident with its opening status, its raw body, now) -> the claim of its first steps, or None."""


def at_opening(ctx: context.Context) -> Opening:
    """How the intake claims a new Incident's first steps in its opening write (None: leave it to the escalation)."""

    def claim(opened: incident.Incident, body: cabc.Mapping[str, Any], now: dt.datetime) -> escalation.Decision | None:
        ns, home = opened.metadata.namespace, ctx.config.namespace
        windows = ctx.indices.window_list()
        if maintenance.selects_workloads(windows, Mutes.PAGES, ns, home, now):
            return None
        if ctx.indices.muted(Mutes.PAGES, ns, opened.spec.source.labels, None, home, now) is not None:
            return None
        c = claimer(ctx, opened)
        if c is None or opened.status is None:
            return None
        if page_budget.in_play(c.spec, opened.status) and not c.ledger.current():
            return None  # the budget is not all listed yet: the escalation waits for it
        decision = decide(c, opened.status, opened, body, now, remember=True)
        return decision if decision.sends else None

    return claim
