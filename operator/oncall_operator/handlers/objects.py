"""Schedules, policies and runbooks: Kopf's indices of their specs, and their Ready checks.

The indices keep the latest spec of every schedule, policy and runbook in memory (the flows
read them through :class:`oncall_operator.executor.indices.Indices`), so a check of references
costs no API call. Each event hands the body to :mod:`oncall_operator.executor.rechecks`, which
checks it at once and again every ``ONCALL_RECHECK_SECONDS``, so that a reference that appears
later (the schedule applied after its policy) turns ``Ready`` true by itself. No Kopf timer:
a timer would put Kopf's finalizer on every object, and deleting one while no operator runs
would hang.
"""

from typing import Any

import kopf

from oncall_operator.api import GROUP, VERSION, kinds, policy, runbook, schedule
from oncall_operator.executor import indices


@kopf.index(GROUP, VERSION, kinds.SCHEDULE.plural)
def schedule_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(schedule.OnCallScheduleSpec, spec)}


@kopf.index(GROUP, VERSION, kinds.POLICY.plural)
def policy_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(policy.EscalationPolicySpec, spec)}


@kopf.index(GROUP, VERSION, kinds.RUNBOOK.plural)
def runbook_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(runbook.RunbookSpec, spec)}


async def _changed(plural: str, type: str, body: kopf.Body, memo: Any) -> None:
    memo.ctx.indices.mark_filled(changed=True)
    await memo.ctx.rechecks.changed(memo.ctx, plural, type, body)


@kopf.on.event(GROUP, VERSION, kinds.SCHEDULE.plural)
async def schedule_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _changed(kinds.SCHEDULE.plural, type, body, memo)


@kopf.on.event(GROUP, VERSION, kinds.POLICY.plural)
async def policy_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _changed(kinds.POLICY.plural, type, body, memo)


@kopf.on.event(GROUP, VERSION, kinds.RUNBOOK.plural)
async def runbook_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    await _changed(kinds.RUNBOOK.plural, type, body, memo)
