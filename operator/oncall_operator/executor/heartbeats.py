"""Heartbeats at run time: the intake records beats, and each Heartbeat's tick pages when they stop.

:func:`hear` runs before the intake's Incident write (:mod:`.runtime` calls it first): a delivery
of a heartbeat's alert (or of ``Watchdog``) writes ``lastBeatAt`` and ``deadline`` into the
status of each Heartbeat it beats, one merge patch each, and never becomes an Incident. An API
failure is :class:`intake.Unavailable` (503), so Alertmanager retries the beat.

:func:`tick` runs every ``ONCALL_TICK_SECONDS`` per Heartbeat (a Kopf timer, so only on the
acting replica): past the deadline it opens (or reopens) the ``HeartbeatMissed`` Incident, which
pages through the Heartbeat's policy like any other; when beats are back it resolves it. The
tick alone writes ``state`` and ``incident``, so a beat racing a tick is decided again at the
next tick, from ``lastBeatAt``.
"""

import collections.abc as cabc
import datetime as dt
import logging
from typing import Any

import aiohttp

from oncall_operator.adapters import apiserver, incidents, intake, metrics, workloads
from oncall_operator.api import GROUP, VERSION, heartbeat, incident, kinds
from oncall_operator.domain import alerts, heartbeats
from oncall_operator.executor import context, ready

log = logging.getLogger(__name__)
MERGE = "application/merge-patch+json"


async def hear(ctx: context.Context, payload: alerts.Payload) -> intake.Accepted | None:
    """Record the beats of a heartbeat's delivery; None when the delivery is no beat (an ordinary alert)."""
    cfg = ctx.config
    known = ctx.indices.heartbeat_list()
    if not heartbeats.is_beat(payload, known, cfg.namespace):
        return None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    beaten = heartbeats.heard(payload, known, cfg.namespace)
    for hb in beaten:
        patch = {"status": {"lastBeatAt": ready.stamp(now), "deadline": ready.stamp(now + heartbeats.timeout(hb.spec))}}
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{hb.namespace}/{kinds.HEARTBEAT.plural}/{hb.name}/status"
        try:
            await ctx.intake_api.call("PATCH", path, patch, content_type=MERGE)
        except apiserver.ApiError as error:
            if error.status != 404:  # deleted meanwhile: nothing to record
                raise intake.Unavailable(f"Heartbeat {hb.namespace}/{hb.name}: API answered {error.status}") from error
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise intake.Unavailable(f"Kubernetes API unreachable: {error!r}") from error
        metrics.HEARTBEATS.labels(heartbeat=f"{hb.namespace}/{hb.name}").inc()
    if not beaten and payload.firing:
        log.warning("%s received but no Heartbeat hears it: nothing pages when it stops", payload.alertname)
        metrics.HEARTBEATS.labels(heartbeat="").inc()
    return intake.Accepted(incident="", changed=bool(beaten), phase="Beat")


async def tick(ctx: context.Context, body: cabc.Mapping[str, Any]) -> None:
    """Alive, Waiting or Missed: open or resolve the Incident, and say so in the Heartbeat's status."""
    meta = body["metadata"]
    hb = heartbeats.Heartbeat(
        meta["namespace"], meta["name"], heartbeat.HeartbeatSpec.model_validate(dict(body["spec"]))
    )
    status = heartbeat.HeartbeatStatus.model_validate(dict(body.get("status") or {}))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    created = dt.datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
    found = heartbeats.look(hb.spec, status.last_beat_at, created, now)
    name = heartbeats.incident_name(hb)
    if found.state == heartbeat.State.MISSED and status.state != heartbeat.State.MISSED:
        await _missed(ctx, hb, name, status.last_beat_at, now)
    elif found.state != heartbeat.State.MISSED and status.state == heartbeat.State.MISSED:
        assert status.last_beat_at is not None
        beat = status.last_beat_at

        def back(current: incident.Incident) -> incident.IncidentStatus | None:
            return heartbeats.returned(current.status, beat, now)

        await incidents.update_status_async(ctx.api, hb.namespace, name, back)
    fields = {"state": found.state.value, "deadline": ready.stamp(found.deadline)}
    if found.state == heartbeat.State.MISSED:
        fields["incident"] = name
    await ready.check_heartbeat(ctx, body, fields)


async def _missed(
    ctx: context.Context, hb: heartbeats.Heartbeat, name: str, last: dt.datetime | None, now: dt.datetime
) -> None:
    spec = heartbeats.incident_spec(hb)
    raw = await workloads.incident(ctx.api, hb.namespace, name)
    if raw is None:
        labels = {"oncall.dev/source": heartbeats.RESOLVER, "app.kubernetes.io/managed-by": "oncall-operator"}
        raw, _ = await incidents.create_async(ctx.api, hb.namespace, name, spec, labels)

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        return heartbeats.missed(current.spec, current.status, last, now)

    await incidents.update_status_async(ctx.api, hb.namespace, name, mutate, known=raw)
    log.warning("Heartbeat %s/%s missed (last beat %s): Incident %s", hb.namespace, hb.name, last, name)
