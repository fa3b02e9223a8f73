"""An OOM kill -> the workload's patch and its Incident: gather the facts, run the domain's plan, record it.

For one pod event: read the kills (:mod:`domain.oom`); skip at once when they are known to be
recorded; take the top-level owner (cached, or guessed from the ReplicaSet's name and verified
by a read that runs alongside); then, under a per-workload lock (two pods of one Deployment
killed together must not both raise it), take the workload, its namespace's annotations and its
Incident, choose the Runbook, ``plan``, and run the plan: both server-side dry-runs (the
workload patch and a Pod from the patched template) in parallel, then the one real patch, then
the Incident write, then Events.

Round trips from the kill to the patched workload: two (dry-runs, patch) when the watch-fed
caches (:mod:`adapters.caches`) answer, three when they do not (a GET of each, in parallel,
first). Why a cache's staleness cannot weaken a guardrail:

- The workload: the patch (and its dry-run) is sent behind ``test`` operations on the uid, the
  generation, the labels and the annotations the plan reads (opt-out, marker, GitOps) of the
  object the plan read (:func:`caches.preconditions`), so the API server applies it only to an
  object unchanged in all the plan looked at; the probe Pod is built from that same template,
  so the dry-run judged exactly what gets written.
  A 422 re-reads from the API and re-plans (:class:`patching.Retry`); retries never read the caches.
- Anything but a patch (a refusal, a superseded or recovered kill...) carries no precondition,
  so it is decided again on fresh GETs before it is recorded. "All kills already recorded" is
  safe from a cache: ``guardrails.seen`` only grows.
- The Incident (raises, last action, action times: caps, cooldown, rate): only the remediation
  writes these fields of an OOM Incident (alert actions leave OOM Incidents alone), every patch
  it applies names its kill in the workload (``workload.MARKER``), and the status write that
  records the kill adds it to ``seen`` with the raise count and times. A cached Incident is used
  only beside a cached workload whose marker it has in ``seen`` (else it is read): it then holds
  every action up to the workload's last change, and a later change would have changed the
  marker, which the precondition on the annotations would catch at the patch. Kills of one
  workload are serialised by the lock and each write goes through to the cache, so back-to-back
  kills plan on the Incident the previous one wrote.
- The namespace's opt-out: as fresh as its watch (milliseconds; a broken watch makes the cache
  answer nothing until it has listed again). A kill after an opt-out is refused, and a refusal
  is re-checked on a GET, so staleness can only let one action through within the watch's
  delivery delay, as a GET one round trip before the patch could.

API writes per remediation: the workload patch, the Incident status write, and the Incident
create the first time: at most three. Dry-runs (two) are not writes. The status write is a PUT
from the Incident the plan used (the cached copy, the GET's answer or the create's answer), with
its resourceVersion as the precondition; only a 409 reads it again. The patch goes before the
Incident write because the latency that matters is kill -> patched workload; the patch itself
names the kill (``oncall.dev/remediated-kill``) so a crash between the two cannot cause a
second raise. Everything is async (:mod:`adapters.apiserver`, aiohttp on the event loop), the
Incident write too (:func:`adapters.incidents.update_status_async`).
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import itertools
import logging
import time
from typing import Any

from oncall_operator.adapters import apiserver, caches, incidents, peering, workloads
from oncall_operator.api import incident, runbook
from oncall_operator.api.maintenance import Mutes
from oncall_operator.domain import lifecycle, matching, oom, oom_incident, oom_plan, workload
from oncall_operator.executor import context, indices, oom_state, patching

log = logging.getLogger(__name__)
Candidates = cabc.Iterable[indices.Candidate]
OomState = oom_state.OomState


class _Misguessed(Exception):
    """The guessed owner was not the real one: start again from the owner read."""


async def remediate(ctx: context.Context, body: cabc.Mapping[str, Any], candidates: Candidates) -> oom_plan.Plan | None:
    """Handle one pod event; returns the plan run (None when nothing needed doing)."""
    state = ctx.oom
    pod = oom.read_pod(body)
    if not pod.kills or (state.known(kill.key for kill in pod.kills) and pod.uid not in state.following):
        return None
    if not matching.in_scope(pod.namespace, ctx.config.watch_namespaces):
        return None
    runbooks, api = list(candidates), state.api
    guessing = [True]

    async def attempt(n: int) -> oom_plan.Plan:
        cached = state.owners.get(pod.owner.uid) if pod.owner else None
        target = cached or (workloads.guess(pod) if guessing[0] else None)
        verify = target is not None and cached is None
        if target is None:
            target = await workloads.owner(api, pod.namespace, pod.owner, pod.name, state.owners)
        async with ctx.locks(f"{pod.namespace}/{target.kind}/{target.name}"):
            # one retry may go to a stale cache, one to a concurrent edit; retries read the API
            fresh, last = n >= 1, n >= 2
            try:
                return await _once(ctx, pod, target, runbooks, last, verify, fresh)
            except _Misguessed:
                guessing[0] = False
                raise patching.Retry() from None

    plan = await patching.retrying(attempt, f"OOM {pod.namespace}/{pod.name}")
    at = plan.recheck_at if plan is not None else None
    if at is not None or pod.uid in state.following:  # an in-place resize to follow
        state.follow(pod.uid, at, lambda: _look_again(ctx, pod.namespace, pod.name, pod.uid))
    return plan


async def _look_again(ctx: context.Context, namespace: str, name: str, uid: str) -> None:
    """The resize's deadline: read the pod and plan again (the fallback if it is still not done)."""
    if not peering.acting():
        return
    body = await workloads.pod(ctx.oom.api, namespace, name)
    if body is None or (body.get("metadata") or {}).get("uid") != uid:
        return  # gone: its replacement runs the template
    candidates = await indices.runbook_candidates(ctx.indices, ctx.oom.api, [namespace, ctx.config.namespace])
    await remediate(ctx, body, candidates)


async def _none() -> None:
    return None


async def _empty() -> dict[str, str]:
    return {}


@dataclasses.dataclass(frozen=True)
class _Facts:
    obj: dict[str, Any] | None
    namespace_annotations: dict[str, str]
    incident: dict[str, Any] | None
    cached: bool
    """Whether any of it came from a cache (and may be stale)."""
    gets: int = 0
    """How many of the three were read with a GET."""


def _accounts(obj: dict[str, Any] | None, raw: dict[str, Any] | None) -> bool:
    """Whether the Incident ``raw`` has recorded the last change the operator made to ``obj``.

    Every patch the remediation applies names its kill in the workload (``workload.MARKER``), and
    the Incident write that records it adds that kill to ``guardrails.seen`` together with the
    raise count, ``lastActionAt`` and ``actionTimes``, in one status write.
    """
    marker = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(workload.MARKER, "")
    if not marker:
        return True
    seen = (((raw or {}).get("status") or {}).get("guardrails") or {}).get("seen") or ()
    return marker in seen


async def _read(
    api: apiserver.Api, c: caches.Caches | None, target: workloads.Target, ns: str, name: str, fresh: bool
) -> _Facts:
    """The workload, its namespace's annotations and its Incident: from the caches when they vouch, else GETs."""
    supported = target.kind in workload.SUPPORTED
    obj = raw = None
    annotations: dict[str, str] | None = None
    have_obj = have_inc = False
    if c is not None and not fresh and supported:
        have_obj, obj = c.workload(target.kind, ns, target.name)
        annotations = c.namespace_annotations(ns)
        if have_obj:  # the cached Incident is only trusted beside a cached workload it accounts for
            have_inc, raw = c.incident(ns, name)
            have_inc = have_inc and _accounts(obj, raw)
    cached = have_obj or have_inc or annotations is not None
    if have_obj and have_inc and annotations is not None:
        return _Facts(obj, annotations, raw, True)  # no await: nothing else runs in between
    got_obj, got_annotations, got_inc = await asyncio.gather(
        workloads.read(api, target.kind, ns, target.name) if supported and not have_obj else _none(),
        workloads.namespace_annotations(api, ns) if supported and annotations is None else _empty(),
        workloads.incident(api, ns, name) if not have_inc else _none(),
    )
    gets = (supported and not have_obj) + (supported and annotations is None) + (not have_inc)
    return _Facts(
        obj if have_obj else got_obj,
        annotations if annotations is not None else got_annotations,
        raw if have_inc else got_inc,
        cached,
        gets,
    )


async def _once(
    ctx: context.Context,
    pod: oom.PodFacts,
    target: workloads.Target,
    runbooks: list[indices.Candidate],
    last: bool,
    verify: bool = False,
    fresh: bool = False,
) -> oom_plan.Plan:
    ns = pod.namespace
    name = oom_incident.incident_name(target.kind, ns, target.name)
    clock = [("start", time.perf_counter())]
    # the guessed owner is checked alongside (the reads, or the dry-runs when the caches answer)
    state = ctx.oom
    check = asyncio.ensure_future(workloads.owner(state.api, ns, pod.owner, pod.name, state.owners)) if verify else None
    try:
        return await _run(ctx, pod, target, name, runbooks, last, fresh, check, clock)
    finally:
        if check is not None and not check.done():
            check.cancel()


async def _checked(check: "asyncio.Future[workloads.Target] | None", target: workloads.Target) -> None:
    if check is not None and await check != target:
        raise _Misguessed()


async def _run(
    ctx: context.Context,
    pod: oom.PodFacts,
    target: workloads.Target,
    name: str,
    runbooks: list[indices.Candidate],
    last: bool,
    fresh: bool,
    check: "asyncio.Future[workloads.Target] | None",
    clock: list[tuple[str, float]],
) -> oom_plan.Plan:
    state, api, cfg = ctx.oom, ctx.oom.api, ctx.config
    ns, newest = pod.namespace, pod.kills[-1]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def decide(facts: _Facts) -> tuple[oom_plan.Plan, matching.Chosen | None, workload.Workload | None]:
        w = workload.read(facts.obj) if facts.obj is not None else None
        labels = matching.oom_labels(
            ns, pod.name, newest.container, target.kind, target.name, pod.labels, w.labels if w else {}
        )
        chosen = matching.select(runbooks, runbook.TriggerEvent.OOM_KILLED, labels, [ns, cfg.namespace])
        current = incident.Incident.model_validate(facts.incident) if facts.incident is not None else None
        status = current.status if current else None
        mute = ctx.indices.muted(Mutes.ACTIONS, ns, labels, w.labels if w else None, cfg.namespace, now)
        situation = oom_plan.Situation(
            pod, target.kind, w, facts.namespace_annotations, chosen, status, cfg.dry_run, now, mute
        )
        return oom_plan.plan(situation), chosen, w

    facts = await _read(api, state.caches, target, ns, name, fresh)
    clock.append(("reads", time.perf_counter()))
    plan, chosen, w = decide(facts)
    clock.append(("plan", time.perf_counter()))
    if facts.cached and plan.mode not in (oom_plan.Mode.APPLY, oom_plan.Mode.DRY_RUN, oom_plan.Mode.NOTHING):
        # only a patch carries preconditions the API server checks; any other decision (refuse,
        # supersede, recover...) is made again on what the API says before it is recorded
        facts = await _read(api, state.caches, target, ns, name, True)
        plan, chosen, w = decide(facts)
        clock.append(("re-reads", time.perf_counter()))
    if plan.mode == oom_plan.Mode.NOTHING:
        await _checked(check, target)
        state.remember(kill.key for kill in pod.kills)
        log.info("OOM %s/%s: %d kill(s) already recorded in %s", ns, pod.name, len(pod.kills), name)
        return plan
    rejected = failed = None
    took: dict[str, float] = {}
    if plan.mode in (oom_plan.Mode.APPLY, oom_plan.Mode.DRY_RUN):
        assert w is not None and facts.obj is not None and plan.change is not None
        ops = [*caches.preconditions(facts.obj), *plan.change.ops]
        probe = workload.probe_pod(w, plan.change.template or w.template)
        rejected, _, manager = await asyncio.gather(
            patching.dry_runs(api, w.kind, w.namespace, w.name, ops, probe, last, took),
            _checked(check, target),
            _vpa_manager(api, state.caches, w),
        )
        clock.append(("dry-runs", time.perf_counter()))
        if manager is not None:
            plan, rejected = oom_plan.left_to_vpa(plan, manager), None
        if plan.mode == oom_plan.Mode.APPLY and plan.resize is not None and rejected is None:
            refused = await patching.resize(api, ns, pod.name, list(plan.resize.ops))
            clock.append(("resize", time.perf_counter()))
            plan = oom_plan.resized(plan) if refused is None else oom_plan.without_resize(plan, refused)
        if (
            plan.mode == oom_plan.Mode.APPLY
            and rejected is None
            and plan.change is not None
            and plan.change.kind != "Pod"
        ):
            failed, patched = await patching.patch(api, w.kind, w.namespace, w.name, ops, last)
            clock.append(("patch", time.perf_counter()))
            if patched is not None and state.caches is not None:
                state.caches.put_workload(patched)
    else:
        await _checked(check, target)
    out = oom_plan.outcome(plan, rejected, failed)
    spec = oom_incident.spec(pod, plan.kill or newest, target.kind, target.name, chosen)
    steps = [s.title for s in chosen.spec.steps] if chosen else []

    def mutate(inc: incident.Incident) -> incident.IncidentStatus | None:
        status = oom_incident.record(inc.spec, inc.status, plan, out, now, pod.name, steps)
        verdict = ctx.indices.verdict_when_filled(inc.spec, ns)
        return lifecycle.first_ready(status, verdict, inc.metadata.generation, now)

    written = await _write(api, ns, name, spec, target.kind, facts.incident, mutate)
    clock.append(("record", time.perf_counter()))
    if written is not None and written.changed and state.caches is not None:
        state.caches.put_incident(written.raw or written.incident.wire())
    state.remember(kill.key for kill in pod.kills)
    steps_ms = " ".join(f"{b[0]} {(b[1] - a[1]) * 1000:.1f}" for a, b in itertools.pairwise(clock))
    if took:  # each dry-run's own time: which leg of the pair is the slow one
        steps_ms += " (" + ", ".join(f"{k} {v:.1f}" for k, v in sorted(took.items())) + ")"
    log.info(
        "OOM %s/%s[%s]: %s %s %s (ms: %s; %d GETs)",
        ns,
        pod.name,
        newest.container,
        plan.mode,
        out.reason,
        out.message,
        steps_ms,
        facts.gets,
    )
    if out.state is not None and written is not None and written.changed:
        _explain(ctx, target, facts.obj, ns, pod.name, written.incident, plan, out)
    return plan


async def _vpa_manager(api: apiserver.Api, c: caches.Caches | None, w: workload.Workload) -> str | None:
    """The VPA that manages ``w``, if any: from the watch-fed cache where the cluster serves VPAs, else
    listed alongside the dry-runs (no extra round trip).

    A cluster without the VPA serves no such list (404: none). A refusal to list is logged and
    taken as none: the remediation must not stop because an optional API is forbidden."""
    cached = c.vpas_in(w.namespace) if c is not None else None
    if cached is not None:
        return workload.vpa_manager(cached, w.kind, w.name)
    try:
        vpas = await workloads.list_items(api, "VerticalPodAutoscaler", w.namespace)
    except apiserver.ApiError as error:
        log.warning("VerticalPodAutoscalers in %s not listed (%s): taken as none", w.namespace, error)
        return None
    return workload.vpa_manager(vpas, w.kind, w.name)


async def _write(
    api: apiserver.Api,
    ns: str,
    name: str,
    spec: incident.IncidentSpec,
    kind: str,
    known: dict[str, Any] | None,
    mutate: incidents.Mutation,
) -> incidents.Written | None:
    """Record on the Incident: a PUT from the copy the plan used (read again only on a 409), or create it first."""
    written = None if known is None else await incidents.update_status_async(api, ns, name, mutate, known=known)
    if written is None:
        made, _ = await incidents.create_async(api, ns, name, spec, oom_incident.labels(kind))
        written = await incidents.update_status_async(api, ns, name, mutate, known=made)
    return written


def _explain(
    ctx: context.Context,
    target: workloads.Target,
    obj: dict[str, Any] | None,
    ns: str,
    pod: str,
    inc: incident.Incident,
    plan: oom_plan.Plan,
    out: oom_plan.Outcome,
) -> None:
    state = out.state
    kind = plan.change.type if plan.change else None
    if state == incident.ActionState.APPLIED:
        reason = "MemoryLimitRaised" if kind == runbook.ActionType.RAISE_MEMORY_LIMIT else "RolloutRestarted"
    else:
        reason = f"Remediation{state.value if state else ''}"
    warning = out.needs_human or state in (incident.ActionState.REFUSED, incident.ActionState.FAILED)
    text = f"OOMKilled in pod {pod}: {out.reason}: {out.message}"
    meta = (obj or {}).get("metadata") or {}
    subject = {
        "apiVersion": target.api_version,
        "kind": target.kind,
        "metadata": {"name": target.name, "namespace": ns, "uid": meta.get("uid")},
    }
    incident_ref = patching.incident_ref(ns, inc.metadata.name, inc.metadata.uid)
    patching.explain(ctx.events, [subject, incident_ref], warning, reason, text)
