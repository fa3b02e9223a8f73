"""MaintenanceWindows and Heartbeats: their indices, status and Ready, and each Heartbeat's tick.

The indices keep every window and heartbeat spec in memory: the escalation and both planners
ask them whether something is muted, the intake which alerts are beats, at no API call. A change
of a window bumps the indices' generation, so every open Incident is looked at again (a window
applied or stopped takes effect at once). A timer keeps each window's ``active``/``nextStart``/
``nextEnd`` current and ticks each Heartbeat every ``ONCALL_TICK_SECONDS``.
"""

from typing import Any

import kopf

from oncall_operator.api import GROUP, VERSION, heartbeat, kinds, maintenance
from oncall_operator.executor import config, heartbeats, indices, ready

WINDOW_RECHECK = 15.0
TICK = max(config.CONFIG.tick_seconds, 0.5)


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
    if type != "DELETED":
        await ready.check_window(memo.ctx, body)


@kopf.timer(GROUP, VERSION, kinds.MAINTENANCE.plural, interval=WINDOW_RECHECK)
async def window_recheck(body: kopf.Body, memo: Any, **_: Any) -> None:
    await ready.check_window(memo.ctx, body)


@kopf.timer(GROUP, VERSION, kinds.HEARTBEAT.plural, interval=TICK)
async def heartbeat_tick(body: kopf.Body, memo: Any, **_: Any) -> None:
    await heartbeats.tick(memo.ctx, body)
