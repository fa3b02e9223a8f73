"""MaintenanceWindows and Heartbeats: indices, status, Ready, each tick.

The indices keep every window and heartbeat spec in memory: the escalation and both planners
ask them whether something is muted, the intake which alerts are beats, at no API call. A change
of a window bumps the indices' generation, so every open Incident is looked at again (a window
applied or stopped takes effect at once). :mod:`oncall_operator.executor.rechecks` (no Kopf timer,
so no finalizer) keeps each window's ``active``/``nextStart``/``nextEnd`` current every
``ONCALL_RECHECK_SECONDS`` and ticks each Heartbeat every ``ONCALL_TICK_SECONDS``.
"""

from typing import Any

import kopf

from oncall_operator.api import GROUP, VERSION, heartbeat, kinds, maintenance
from oncall_operator.executor import indices


@kopf.index(GROUP, VERSION, kinds.MAINTENANCE.plural)
def maintenance_windows(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(maintenance.MaintenanceWindowSpec, spec)}


@kopf.index(GROUP, VERSION, kinds.HEARTBEAT.plural)
def heartbeat_specs(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): indices.parse(heartbeat.HeartbeatSpec, spec)}


@kopf.on.event(GROUP, VERSION, kinds.MAINTENANCE.plural)
async def window_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.ctx.indices.mark_filled(changed=True)
    await memo.ctx.rechecks.changed(memo.ctx, kinds.MAINTENANCE.plural, type, body)


@kopf.on.event(GROUP, VERSION, kinds.HEARTBEAT.plural)
async def heartbeat_changed(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.ctx.indices.mark_filled()
    await memo.ctx.rechecks.changed(memo.ctx, kinds.HEARTBEAT.plural, type, body)
