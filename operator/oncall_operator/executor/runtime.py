"""Start-up and shut-down of everything the operator runs beside Kopf's handlers, in one known order.

Kopf calls :func:`start` from the operator's one start-up handler, with its settings and the
indices it keeps (which it hands only to handlers), and :func:`stop` from its one clean-up
handler. The order matters and is written once, here:

1. the clients: the official one (Secrets, Ready patches), the async one (status writes,
   reads, Events), the notifiers' session, the Secret values cache, the Event poster;
2. the indices and the context every flow takes;
3. leadership: standalone acts at once; with peering, the observer decides;
4. the OOM state and its caches' watches, then the pod watch that hands kills to :mod:`.oom`;
5. the loop over the open Incidents (escalation, settling), the Incident watch that feeds it
   (:mod:`.incident_events`, once Kopf's indices are filled), and the one that checks Schedules,
   Policies and Runbooks again; the heap's trim once a minute (:mod:`~oncall_operator.adapters.memory`)
   and the event loop's lag probe (:mod:`~oncall_operator.adapters.looplag`);
6. the HTTP intake (alerts, /healthz, /readyz, /metrics): last, so a request never meets a
   half-built context.

:func:`stop` undoes them in reverse: the intake stops taking alerts first, the last Events are
posted before the clients close.
"""

import asyncio
import dataclasses
import functools
import logging
from typing import Any

import aiohttp

from oncall_operator.adapters import (
    answers,
    apiserver,
    events,
    incidentwatch,
    intake,
    kube,
    looplag,
    memory,
    peering,
    podwatch,
    tasks,
)
from oncall_operator.domain import due_hints
from oncall_operator.executor import (
    alerts,
    answering,
    config,
    context,
    heartbeats,
    incident_events,
    indices,
    oom,
    oom_alerts,
    open_incidents,
    page_budget,
    patching,
    rechecks,
    signing,
)
from oncall_operator.executor import peering as leadership

log = logging.getLogger(__name__)
INTAKE_AGENT = "oncall-operator/intake"  # the API server takes "oncall-operator" as the field manager


@dataclasses.dataclass
class Running:
    """What :func:`start` started and :func:`stop` stops, beside the context."""

    ctx: context.Context
    pod_watch: podwatch.PodWatch
    pod_watch_task: "asyncio.Task[None]"
    incident_watch: incidentwatch.IncidentWatch
    incident_watch_task: "asyncio.Task[None]"
    intake: Any
    observer: leadership.Observer | None
    trimming: "asyncio.Task[None]"
    lag: "asyncio.Task[None]"


async def start(
    cfg: config.Config,
    reporter: events.Reporter,
    spec_indices: tuple[indices.SpecIndex, indices.SpecIndex, indices.SpecIndex],
    priority: int | None,
) -> Running:
    """Everything, in order; raises ValueError or OSError when the intake's address cannot be served."""
    k = kube.Kube.connect()
    k.api.user_agent = "oncall-operator"  # the field manager its writes show in managedFields
    api = apiserver.Api(k)
    poster = events.Poster(api, reporter)
    poster.start()
    policies, runbooks, schedules = spec_indices
    ctx = context.Context(
        config=cfg,
        kube=k,
        api=api,
        intake_api=apiserver.Api(k, INTAKE_AGENT),
        http=aiohttp.ClientSession(),
        secrets=kube.SecretValues(k),
        events=poster,
        indices=indices.Indices(policies, runbooks, schedules, cfg.namespace),
        locks=patching.Locks[str](),
        oom=oom.OomState(apiserver.Api(k)),
        incidents=open_incidents.OpenIncidents(),
        rechecks=rechecks.Rechecks(),
    )
    ctx.link_key = signing.link_key(ctx)
    observer = None
    if cfg.peering is None:
        peering.set_acting(True)
    else:
        assert priority is not None
        observer = leadership.Observer(k, cfg, priority)
        observer.start()
    ctx.oom.start_caches(cfg.watch_namespaces)

    async def handle(pod: dict[str, Any]) -> None:
        namespace = pod["metadata"].get("namespace", "")
        candidates = await indices.runbook_candidates(ctx.indices, ctx.oom.api, [namespace, cfg.namespace])
        await oom.remediate(ctx, pod, candidates)

    pod_watch = podwatch.PodWatch(apiserver.Api(k), cfg.watch_namespaces, handle)
    pod_watch_task = asyncio.create_task(pod_watch.run(), name="pod watch")
    ctx.incidents.start(ctx)
    incident_watch = incidentwatch.IncidentWatch(
        apiserver.Api(k),
        cfg.watch_namespaces,
        functools.partial(incident_events.changed, ctx),
        functools.partial(indices.until_filled, ctx.indices, api, cfg.watch_namespaces),
        lambda body: due_hints.rank(body, open_incidents.wall_clock()),
    )
    incident_watch_task = asyncio.create_task(incident_watch.run(), name="incident watch")
    ctx.rechecks.start(ctx)
    host, port = intake.parse_address(cfg.http_address)
    token = alerts.token(ctx)
    if token is None:
        log.warning(
            "ALERT INTAKE AUTHENTICATION IS DISABLED: anyone who reaches %s can open Incidents. "
            "Set ONCALL_INTAKE_TOKEN_SECRET to a Secret in %s with the key %r.",
            cfg.http_address,
            cfg.namespace,
            alerts.TOKEN_KEY,
        )

    async def write(payload: Any) -> intake.Accepted:
        return await heartbeats.hear(ctx, payload) or await oom_alerts.accept(ctx, ctx.indices.homes, payload)

    answer = functools.partial(answering.answer, ctx)
    click = functools.partial(answering.slack, ctx)
    routes = [
        functools.partial(answers.add_routes, answer=answer),
        functools.partial(answers.add_slack_route, secret=signing.slack_secret(ctx), on_click=click),
        functools.partial(
            answers.add_pagerduty_route,
            secret=signing.pagerduty_secret(ctx),
            on_event=functools.partial(answering.pagerduty, ctx),
        ),
        functools.partial(
            answers.add_twilio_routes,
            secret=signing.twilio_secret(ctx),
            external_url=cfg.external_url,
            on_sms=functools.partial(answering.sms, ctx),
            on_voice=functools.partial(answering.voice, ctx),
        ),
    ]
    app = intake.build_app(intake.Intake(write=write, ready=alerts.Readiness(ctx), token=token, routes=routes))
    runner = await intake.serve(app, host, port)
    where = ", ".join(f"{a[0]}:{a[1]}" for a in runner.addresses if isinstance(a, tuple)) or cfg.http_address
    log.info("alert intake listening on %s (POST /api/v1/alerts, /healthz, /readyz, /metrics)", where)
    trimming = asyncio.create_task(memory.every(), name="heap trim")
    lag = asyncio.create_task(looplag.watch(), name="event loop lag")
    return Running(ctx, pod_watch, pod_watch_task, incident_watch, incident_watch_task, runner, observer, trimming, lag)


async def stop(running: Running) -> None:
    """Everything :func:`start` started, in reverse."""
    ctx = running.ctx
    await running.intake.cleanup()
    await tasks.cancel(running.trimming)
    await tasks.cancel(running.lag)
    await tasks.cancel(running.pod_watch_task)
    await running.pod_watch.close()
    await running.pod_watch.api.close()
    await tasks.cancel(running.incident_watch_task)
    await running.incident_watch.close()
    await running.incident_watch.api.close()
    await ctx.incidents.stop()
    await page_budget.stop(ctx.indices.pages)
    await ctx.rechecks.stop()
    await ctx.oom.close()
    if running.observer is not None:
        await running.observer.stop()
    await ctx.events.close()
    for client in (ctx.intake_api, ctx.api):
        await client.close()
    await ctx.http.close()
