"""Schedules, policies and runbooks: Kopf's indices of their specs, and their Ready checks.

The indices keep the latest spec of every schedule, policy and runbook in memory (the flows
read them through :class:`oncall_operator.executor.indices.Indices`), so a check of references
costs no API call. A timer re-checks each object so that a reference that appears later (the
schedule applied after its policy) turns ``Ready`` true by itself.
"""

from typing import Any

import kopf

from oncall_operator.api import GROUP, VERSION, kinds, policy, runbook, schedule
from oncall_operator.executor import config, indices, ready

RECHECK = config.CONFIG.recheck_seconds


@kopf.index(GROUP, VERSION, kinds.SCHEDULE.plural)
def schedule_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(schedule.OnCallScheduleSpec, spec)}


@kopf.index(GROUP, VERSION, kinds.POLICY.plural)
def policy_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(policy.EscalationPolicySpec, spec)}


@kopf.index(GROUP, VERSION, kinds.RUNBOOK.plural)
def runbook_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(runbook.RunbookSpec, spec)}


@kopf.on.event(GROUP, VERSION, kinds.SCHEDULE.plural)
async def schedule_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.ctx.indices.mark_filled(changed=True)
    if type != "DELETED":
        await ready.check_schedule(memo.ctx, body)


@kopf.timer(GROUP, VERSION, kinds.SCHEDULE.plural, interval=RECHECK)
async def schedule_recheck(body: kopf.Body, memo: Any, **_: Any) -> None:
    await ready.check_schedule(memo.ctx, body)


@kopf.on.event(GROUP, VERSION, kinds.POLICY.plural)
async def policy_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.ctx.indices.mark_filled(changed=True)
    if type != "DELETED":
        await ready.check_policy(memo.ctx, body)


@kopf.timer(GROUP, VERSION, kinds.POLICY.plural, interval=RECHECK)
async def policy_recheck(body: kopf.Body, memo: Any, **_: Any) -> None:
    await ready.check_policy(memo.ctx, body)


@kopf.on.event(GROUP, VERSION, kinds.RUNBOOK.plural)
async def runbook_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.ctx.indices.mark_filled(changed=True)
    if type != "DELETED":
        await ready.check_runbook(memo.ctx, body)


@kopf.timer(GROUP, VERSION, kinds.RUNBOOK.plural, interval=RECHECK)
async def runbook_recheck(body: kopf.Body, memo: Any, **_: Any) -> None:
    await ready.check_runbook(memo.ctx, body)
