"""The imperative shell of OOM remediation: gather the facts, run the domain's plan, record it.

For one pod event: read the kills (:mod:`domain.oom`); skip at once when they are known to be
recorded; take the top-level owner (cached, or guessed from the ReplicaSet's name and verified
in the same batch of reads); then, under a per-workload lock (two pods of one Deployment killed
together must not both raise it), read the workload, its namespace and its Incident in
parallel, choose the Runbook, ``plan``, and run the plan: both server-side dry-runs (the
workload patch and a Pod from the patched template) in parallel, then the one real patch, then
the Incident write, then Events. Three round trips from the kill to the patched workload.

API writes per remediation: the workload patch, the Incident status write, and the Incident
create the first time: at most three. Dry-runs (two) are not writes. The patch goes before the
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

from oncall_operator.adapters import incidents, kube, workloads
from oncall_operator.api import GROUP, VERSION, incident, kinds, runbook
from oncall_operator.domain import matching, oom, oom_incident, remediation, workload

log = logging.getLogger(__name__)
Candidates = cabc.Iterable[tuple[str, str, runbook.RunbookSpec | None]]
TRANSIENT = (429, 500, 502, 503, 504)


@dataclasses.dataclass(frozen=True)
class Options:
    operator_namespace: str
    watch_namespaces: tuple[str, ...] = ()
    dry_run: bool = False


class OomState:
    """What the remediation keeps in memory: only caches and locks, never the truth.

    ``recorded`` holds kill keys known to be in their Incident, so the many status updates of
    a pod that was killed once cost no API call; after a restart it is empty and the Incident
    is read again. ``locks`` serialise remediations per workload within this process.
    """

    def __init__(self, size: int = 20000) -> None:
        self.api: workloads.Api | None = None
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

    async def close(self) -> None:
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
                return await _once(k, api, state, pod, target, runbooks, opts, last=attempt >= 1, verify=verify)
        except _Misguessed:
            guessing = False
        except _Retry:
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
) -> remediation.Plan:
    ns, supported = pod.namespace, target.kind in workload.SUPPORTED
    name = oom_incident.incident_name(target.kind, ns, target.name)
    clock = [("start", time.perf_counter())]
    obj, ns_annotations, raw, real = await asyncio.gather(
        workloads.read(api, target.kind, ns, target.name) if supported else _none(),
        workloads.namespace_annotations(api, ns) if supported else _empty(),
        workloads.incident(api, ns, name),
        workloads.owner(api, ns, pod.owner, pod.name, state.owners) if verify else _none(),
    )
    if real is not None and real != target:
        raise _Misguessed()
    current = incident.Incident.model_validate(raw) if raw is not None else None
    clock.append(("reads", time.perf_counter()))
    w = workload.read(obj) if obj is not None else None
    newest = pod.kills[-1]
    labels = matching.oom_labels(
        ns, pod.name, newest.container, target.kind, target.name, pod.labels, w.labels if w else {}
    )
    chosen = matching.select(runbooks, runbook.TriggerEvent.OOM_KILLED, labels, [ns, opts.operator_namespace])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    status = current.status if current else None
    situation = remediation.Situation(pod, target.kind, w, ns_annotations, chosen, status, opts.dry_run, now)
    plan = remediation.plan(situation)
    if plan.mode == remediation.Mode.NOTHING:
        state.remember(kill.key for kill in pod.kills)
        log.info("OOM %s/%s: %d kill(s) already recorded in %s", ns, pod.name, len(pod.kills), name)
        return plan
    rejected = failed = None
    if plan.mode in (remediation.Mode.APPLY, remediation.Mode.DRY_RUN):
        assert w is not None and plan.change is not None
        rejected = await _dry_runs(api, w, plan.change, last)
        clock.append(("dry-runs", time.perf_counter()))
        if plan.mode == remediation.Mode.APPLY and rejected is None:
            failed = await _patch(api, w, plan.change, last)
            clock.append(("patch", time.perf_counter()))
    out = remediation.outcome(plan, rejected, failed)
    spec = oom_incident.spec(pod, plan.kill or newest, target.kind, target.name, chosen)
    steps = [s.title for s in chosen.spec.steps] if chosen else []

    def mutate(inc: incident.Incident) -> incident.IncidentStatus | None:
        return oom_incident.record(inc.spec, inc.status, plan, out, now, pod.name, steps)

    written = await asyncio.to_thread(_write, k, ns, name, spec, target.kind, current is None, mutate)
    clock.append(("record", time.perf_counter()))
    state.remember(kill.key for kill in pod.kills)
    steps_ms = " ".join(f"{b[0]} {(b[1] - a[1]) * 1000:.0f}" for a, b in itertools.pairwise(clock))
    log.info(
        "OOM %s/%s[%s]: %s %s %s (ms: %s)",
        ns,
        pod.name,
        newest.container,
        plan.mode,
        out.reason,
        out.message,
        steps_ms,
    )
    if out.state is not None and written is not None and written.changed:
        _events(target, obj, ns, pod.name, written.incident, plan, out)
    return plan


async def _dry_runs(api: workloads.Api, w: workload.Workload, change: remediation.Change, last: bool) -> str | None:
    """Why the API server would refuse the change (the patch, or the pods it makes), or None."""
    results = await asyncio.gather(
        workloads.patch(api, w.kind, w.namespace, w.name, list(change.ops), True),
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


async def _patch(api: workloads.Api, w: workload.Workload, change: remediation.Change, last: bool) -> str | None:
    try:
        await workloads.patch(api, w.kind, w.namespace, w.name, list(change.ops), False)
    except workloads.ApiError as error:
        if error.status in (409, 422) and not last:
            raise _Retry() from error
        if error.status in TRANSIENT:
            raise
        return f"the {w.kind} patch failed: {error.message}"
    return None


def _write(
    k: kube.Kube,
    ns: str,
    name: str,
    spec: incident.IncidentSpec,
    kind: str,
    absent: bool,
    mutate: incidents.Mutation,
) -> incidents.Written | None:
    written = None if absent else incidents.update_status(k, ns, name, mutate)
    if written is None:
        incidents.create(k, ns, name, spec, oom_incident.labels(kind))
        written = incidents.update_status(k, ns, name, mutate)
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
