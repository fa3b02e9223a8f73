"""The imperative shell of OOM remediation: gather the facts, run the domain's plan, record it.

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
  A 422 re-reads from the API and re-plans (``_Retry``); retries never read the caches.
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
second raise. The hot path is async (:mod:`adapters.workloads`, aiohttp); the Incident write goes
through :mod:`adapters.incidents` on the blocking client, in ``asyncio.to_thread``.
"""

import asyncio
import collections
import collections.abc as cabc
import dataclasses
import datetime as dt
import itertools
import json
import logging
import time
import weakref
from typing import Any

import aiohttp
import kubernetes

from oncall_operator.adapters import caches, incidents, kube, workloads
from oncall_operator.api import GROUP, VERSION, incident, kinds, runbook
from oncall_operator.domain import conditions, lifecycle, matching, oom, oom_incident, remediation, workload

log = logging.getLogger(__name__)
Candidates = cabc.Iterable[tuple[str, str, runbook.RunbookSpec | None]]
TRANSIENT = (429, 500, 502, 503, 504)


@dataclasses.dataclass(frozen=True)
class Options:
    operator_namespace: str
    watch_namespaces: tuple[str, ...] = ()
    dry_run: bool = False
    ready: cabc.Callable[[incident.IncidentSpec, str], conditions.Verdict | None] | None = None
    """The new Incident's Ready verdict from the operator's indices (None: not known yet), so the
    opening status write says it and the Incident's handler has no PATCH to add."""


class OomState:
    """What the remediation keeps in memory: only caches and locks, never the truth.

    ``recorded`` holds kill keys known to be in their Incident, so the many status updates of
    a pod that was killed once cost no API call; after a restart it is empty and the Incident
    is read again. ``locks`` serialise remediations per workload within this process.
    """

    def __init__(self, size: int = 20000) -> None:
        self.api: workloads.Api | None = None
        self.caches: caches.Caches | None = None
        self.owners = workloads.OwnerCache()
        self.recorded = collections.OrderedDict[str, None]()
        self.size = size
        self.locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def known(self, keys: cabc.Iterable[str]) -> bool:
        return all(key in self.recorded for key in keys)

    def remember(self, keys: cabc.Iterable[str]) -> None:
        for key in keys:
            self.recorded[key] = None
            self.recorded.move_to_end(key)
        while len(self.recorded) > self.size:
            self.recorded.popitem(last=False)

    def client(self, k: kube.Kube) -> workloads.Api:
        if self.api is None:
            self.api = workloads.Api(k)
        return self.api

    def start_caches(self, k: kube.Kube, scopes: cabc.Sequence[str]) -> None:
        """Start the watches that feed the caches (on the running loop); reads GET until they are in."""
        if self.caches is None:
            self.caches = caches.Caches(scopes)
            self.caches.start(self.client(k))

    async def close(self) -> None:
        if self.caches is not None:
            await self.caches.stop()
            self.caches = None
        if self.api is not None:
            await self.api.close()
            self.api = None

    def lock(self, key: str) -> asyncio.Lock:
        found = self.locks.get(key)
        if found is None:
            found = self.locks[key] = asyncio.Lock()
        return found


class _Retry(Exception):
    """The workload changed between the read and the patch: read it again and re-plan."""


class _Misguessed(Exception):
    """The guessed owner was not the real one: start again from the owner read."""


async def remediate(
    k: kube.Kube, state: OomState, body: cabc.Mapping[str, Any], candidates: Candidates, opts: Options
) -> remediation.Plan | None:
    """Handle one pod event; returns the plan run (None when nothing needed doing)."""
    pod = oom.read_pod(body)
    if not pod.kills or state.known(kill.key for kill in pod.kills):
        return None
    if not matching.in_scope(pod.namespace, opts.watch_namespaces):
        return None
    runbooks, api = list(candidates), state.client(k)
    guessing = True
    for attempt in range(4):
        try:
            cached = state.owners.get(pod.owner.uid) if pod.owner else None
            target = cached or (workloads.guess(pod) if guessing else None)
            verify = target is not None and cached is None
            if target is None:
                target = await workloads.owner(api, pod.namespace, pod.owner, pod.name, state.owners)
            async with state.lock(f"{pod.namespace}/{target.kind}/{target.name}"):
                # one retry may go to a stale cache, one to a concurrent edit; retries read the API
                fresh, last = attempt >= 1, attempt >= 2
                return await _once(k, api, state, pod, target, runbooks, opts, last, verify, fresh)
        except _Misguessed:
            guessing = False
        except _Retry:
            log.info("OOM %s/%s: the workload changed since it was read; reading it again", pod.namespace, pod.name)
            continue
        except (workloads.ApiError, kubernetes.client.ApiException, incidents.ConflictsExhausted) as error:
            status = getattr(error, "status", 409)
            if attempt < 3 and status in (*TRANSIENT, 409):
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            if isinstance(error, incidents.ConflictsExhausted):
                raise
            # e.g. RBAC, or a namespace being deleted: one clear line, not a traceback
            log.error("OOM %s/%s not handled: %s", pod.namespace, pod.name, _text(error))
            return None
        except (aiohttp.ClientError, TimeoutError) as error:
            if attempt == 3:
                raise
            log.warning("OOM %s/%s: %r, retrying", pod.namespace, pod.name, error)
            await asyncio.sleep(0.5 * 2**attempt)
    return None


def _text(error: Exception) -> str:
    if isinstance(error, workloads.ApiError):
        return error.message
    body = getattr(error, "body", None)
    try:
        return str(json.loads(body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(error)


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
    api: workloads.Api, c: caches.Caches | None, target: workloads.Target, ns: str, name: str, fresh: bool
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
    return _Facts(
        obj if have_obj else got_obj,
        annotations if annotations is not None else got_annotations,
        raw if have_inc else got_inc,
        cached,
    )


async def _once(
    k: kube.Kube,
    api: workloads.Api,
    state: OomState,
    pod: oom.PodFacts,
    target: workloads.Target,
    runbooks: list[tuple[str, str, runbook.RunbookSpec | None]],
    opts: Options,
    last: bool,
    verify: bool = False,
    fresh: bool = False,
) -> remediation.Plan:
    ns = pod.namespace
    name = oom_incident.incident_name(target.kind, ns, target.name)
    clock = [("start", time.perf_counter())]
    # the guessed owner is checked alongside (the reads, or the dry-runs when the caches answer)
    check = asyncio.ensure_future(workloads.owner(api, ns, pod.owner, pod.name, state.owners)) if verify else None
    try:
        return await _run(k, api, state, pod, target, name, runbooks, opts, last, fresh, check, clock)
    finally:
        if check is not None and not check.done():
            check.cancel()


async def _checked(check: "asyncio.Future[workloads.Target] | None", target: workloads.Target) -> None:
    if check is not None and await check != target:
        raise _Misguessed()


async def _run(
    k: kube.Kube,
    api: workloads.Api,
    state: OomState,
    pod: oom.PodFacts,
    target: workloads.Target,
    name: str,
    runbooks: list[tuple[str, str, runbook.RunbookSpec | None]],
    opts: Options,
    last: bool,
    fresh: bool,
    check: "asyncio.Future[workloads.Target] | None",
    clock: list[tuple[str, float]],
) -> remediation.Plan:
    ns, newest = pod.namespace, pod.kills[-1]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def decide(facts: _Facts) -> tuple[remediation.Plan, matching.Chosen | None, workload.Workload | None]:
        w = workload.read(facts.obj) if facts.obj is not None else None
        labels = matching.oom_labels(
            ns, pod.name, newest.container, target.kind, target.name, pod.labels, w.labels if w else {}
        )
        chosen = matching.select(runbooks, runbook.TriggerEvent.OOM_KILLED, labels, [ns, opts.operator_namespace])
        current = incident.Incident.model_validate(facts.incident) if facts.incident is not None else None
        status = current.status if current else None
        situation = remediation.Situation(
            pod, target.kind, w, facts.namespace_annotations, chosen, status, opts.dry_run, now
        )
        return remediation.plan(situation), chosen, w

    facts = await _read(api, state.caches, target, ns, name, fresh)
    clock.append(("reads", time.perf_counter()))
    plan, chosen, w = decide(facts)
    if facts.cached and plan.mode not in (remediation.Mode.APPLY, remediation.Mode.DRY_RUN, remediation.Mode.NOTHING):
        # only a patch carries preconditions the API server checks; any other decision (refuse,
        # supersede, recover...) is made again on what the API says before it is recorded
        facts = await _read(api, state.caches, target, ns, name, True)
        plan, chosen, w = decide(facts)
        clock.append(("re-reads", time.perf_counter()))
    if plan.mode == remediation.Mode.NOTHING:
        await _checked(check, target)
        state.remember(kill.key for kill in pod.kills)
        log.info("OOM %s/%s: %d kill(s) already recorded in %s", ns, pod.name, len(pod.kills), name)
        return plan
    rejected = failed = None
    if plan.mode in (remediation.Mode.APPLY, remediation.Mode.DRY_RUN):
        assert w is not None and facts.obj is not None and plan.change is not None
        guard = caches.preconditions(facts.obj)
        rejected, _ = await asyncio.gather(_dry_runs(api, w, plan.change, guard, last), _checked(check, target))
        clock.append(("dry-runs", time.perf_counter()))
        if plan.mode == remediation.Mode.APPLY and rejected is None:
            failed, patched = await _patch(api, w, plan.change, guard, last)
            clock.append(("patch", time.perf_counter()))
            if patched is not None and state.caches is not None:
                state.caches.put_workload(patched)
    else:
        await _checked(check, target)
    out = remediation.outcome(plan, rejected, failed)
    spec = oom_incident.spec(pod, plan.kill or newest, target.kind, target.name, chosen)
    steps = [s.title for s in chosen.spec.steps] if chosen else []

    def mutate(inc: incident.Incident) -> incident.IncidentStatus | None:
        status = oom_incident.record(inc.spec, inc.status, plan, out, now, pod.name, steps)
        verdict = opts.ready(inc.spec, ns) if opts.ready is not None else None
        return lifecycle.first_ready(status, verdict, inc.metadata.generation, now)

    written = await asyncio.to_thread(_write, k, ns, name, spec, target.kind, facts.incident, mutate)
    clock.append(("record", time.perf_counter()))
    if written is not None and written.changed and state.caches is not None:
        state.caches.put_incident(written.raw or written.incident.wire())
    state.remember(kill.key for kill in pod.kills)
    steps_ms = " ".join(f"{b[0]} {(b[1] - a[1]) * 1000:.0f}" for a, b in itertools.pairwise(clock))
    log.info(
        "OOM %s/%s[%s]: %s %s %s (ms: %s%s)",
        ns,
        pod.name,
        newest.container,
        plan.mode,
        out.reason,
        out.message,
        steps_ms,
        "; cached reads" if facts.cached else "",
    )
    if out.state is not None and written is not None and written.changed:
        _events(target, facts.obj, ns, pod.name, written.incident, plan, out)
    return plan


async def _dry_runs(
    api: workloads.Api, w: workload.Workload, change: remediation.Change, guard: list[dict[str, Any]], last: bool
) -> str | None:
    """Why the API server would refuse the change (the patch, or the pods it makes), or None."""
    results = await asyncio.gather(
        workloads.patch(api, w.kind, w.namespace, w.name, [*guard, *change.ops], True),
        workloads.dry_run_pod(api, w.namespace, workload.probe_pod(w, change.template)),
        return_exceptions=True,
    )
    problems = []
    for what, result in zip((f"the {w.kind} patch", "a pod of the new template"), results, strict=True):
        if isinstance(result, workloads.ApiError):
            if what.endswith("patch") and result.status == 422 and not last:
                raise _Retry()
            if result.status in TRANSIENT:
                raise result
            problems.append(f"{what}: {result.message}")
        elif isinstance(result, BaseException):
            raise result
    return "; ".join(problems) or None


async def _patch(
    api: workloads.Api, w: workload.Workload, change: remediation.Change, guard: list[dict[str, Any]], last: bool
) -> tuple[str | None, dict[str, Any] | None]:
    """The patch's failure in words (None when applied), and the patched object."""
    try:
        patched = await workloads.patch(api, w.kind, w.namespace, w.name, [*guard, *change.ops], False)
    except workloads.ApiError as error:
        if error.status in (409, 422) and not last:
            raise _Retry() from error
        if error.status in TRANSIENT:
            raise
        return f"the {w.kind} patch failed: {error.message}", None
    return None, patched


def _write(
    k: kube.Kube,
    ns: str,
    name: str,
    spec: incident.IncidentSpec,
    kind: str,
    known: dict[str, Any] | None,
    mutate: incidents.Mutation,
) -> incidents.Written | None:
    """Record on the Incident: a PUT from the copy the plan used (read again only on a 409), or create it first."""
    written = None if known is None else incidents.update_status(k, ns, name, mutate, known=known)
    if written is None:
        made, _ = incidents.create(k, ns, name, spec, oom_incident.labels(kind))
        written = incidents.update_status(k, ns, name, mutate, known=made.wire())
    return written


def _events(
    target: workloads.Target,
    obj: dict[str, Any] | None,
    ns: str,
    pod: str,
    inc: incident.Incident,
    plan: remediation.Plan,
    out: remediation.Outcome,
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
    ref = {
        "apiVersion": target.api_version,
        "kind": target.kind,
        "metadata": {"name": target.name, "namespace": ns, "uid": meta.get("uid")},
    }
    workloads.post_event(ref, warning, reason, text)
    inc_ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kinds.INCIDENT.kind,
        "metadata": {"name": inc.metadata.name, "namespace": ns, "uid": inc.metadata.uid},
    }
    workloads.post_event(inc_ref, warning, reason, text)
