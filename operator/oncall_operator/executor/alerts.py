"""An Alertmanager notification -> its Incident, written through the Kubernetes API in as few requests as it can.

The decisions are the domain's (:mod:`~oncall_operator.domain.alert_incident`); this module
finds the group's Incident, picks the Runbook a new one uses, creates it under its
deterministic name (a second replica or a duplicate delivery meets AlreadyExists and joins
the same Incident) and writes the status through the optimistic-concurrency loop of
:mod:`incidents`, on the event loop (aiohttp: no worker thread to queue for). Every API failure is
raised as :class:`intake.Unavailable`, which the intake answers with 503 so Alertmanager retries.

Each request counts: at 50 alerts/s the API server and etcd share the cores with the operator,
so the intake's latency is the number of requests it makes. A new group costs a POST and a
status PUT, an existing one a GET and a PUT, because the caller hands in a :class:`Seen`: the
operator's in-memory indices (Kopf's) of Runbooks and Incident names, snapshotted on the event
loop. A home the indices cover and that holds no Incident of the group's name is not read; the
create's answer, or the object just read, is the starting point of the status write (no GET).
The indices are trusted only once Kopf has filled them and while this replica acts (a standby's
watches are paused, so its indices are frozen); otherwise, and for namespaces outside the
watch, the Runbooks are listed and the homes read from the API, as just after a start-up the
first alert must still find its runbook. When the indices offer no Runbook for a new group the
API is listed too, so a Runbook applied a moment ago (or while this replica stood by) is never
missed: a missed Runbook would be a missed page, an extra list only costs time.
"""

import asyncio
import collections
import collections.abc as cabc
import dataclasses
import datetime as dt
import threading
import time
from typing import Any

import aiohttp
import kubernetes
import urllib3

from oncall_operator.adapters import apiserver, incidents, intake, peering, workloads
from oncall_operator.api import incident
from oncall_operator.domain import (
    alert_incident,
    alerts,
    conditions,
    escalation,
    lifecycle,
    matching,
    noise,
    ratelimit,
)
from oncall_operator.executor import claiming, config, context, incident_cap, indices

Candidate = indices.Candidate
TOKEN_KEY = "token"
READY_CACHE_SECONDS = 5.0


Verdicts = cabc.Callable[[incident.IncidentSpec, str], conditions.Verdict]
"""(spec, namespace) -> whether the Incident's references resolve."""


Hand = cabc.Callable[[incidents.Written, cabc.Sequence[escalation.Send]], None]
"""(the opening write as the intake made it, the steps it claimed) -> None: the escalation sends them."""


@dataclasses.dataclass(frozen=True)
class Seen:
    """What the operator's indices say about one delivery's homes, taken on the event loop."""

    covered: frozenset[str]
    """The group's homes whose Runbooks and Incidents the indices hold completely."""
    runbooks: tuple[Candidate, ...]
    """The Runbooks of the covered homes."""
    incidents: frozenset[str]
    """The covered homes that hold an Incident of the group's name."""
    ready: Verdicts | None = None
    """The Incident's Ready verdict from the same indices: the opening write says it, no later PATCH."""
    flap: cabc.Callable[[incident.Incident], noise.Flap] | None = None
    """The flap thresholds of the Incident's policy (``spec.noise``), from the same indices."""
    claim: claiming.Opening | None = None
    """The claim of a new Incident's first steps, written with its opening (one write less)."""
    hand: Hand | None = None
    """Who sends what :attr:`claim` claimed, once written (the escalation; the intake does not wait)."""


def seen(
    payload: alerts.Payload,
    operator_namespace: str,
    scope: cabc.Sequence[str],
    runbooks: cabc.Iterable[Candidate] | None,
    incident_namespaces: cabc.Iterable[str],
    ready: Verdicts | None = None,
) -> Seen | None:
    """The snapshot for :func:`write`; None when the indices are not to be trusted (``runbooks`` None)."""
    if runbooks is None:
        return None
    homes = alert_incident.homes(payload, operator_namespace, scope)
    covered = frozenset(ns for ns in homes if matching.in_scope(ns, scope))
    return Seen(
        covered=covered,
        runbooks=tuple(rb for rb in runbooks if rb[0] in covered),
        incidents=frozenset(incident_namespaces) & covered,
        ready=ready,
    )


class Known:
    """Where this process last found or made each group's Incident (name -> namespace), the latest ``size``.

    It covers the moment between a create and the index seeing it (a duplicate delivery right
    behind the first is then read, not created again); a stale entry costs one 404.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._where: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._where.get(name)

    def put(self, name: str, namespace: str) -> None:
        with self._lock:
            self._where[name] = namespace
            self._where.move_to_end(name)
            while len(self._where) > self.size:
                self._where.popitem(last=False)

    def forget(self, name: str, namespace: str) -> None:
        with self._lock:
            if self._where.get(name) == namespace:
                del self._where[name]


KNOWN = Known()
NEW_INCIDENTS = ratelimit.Buckets(config.CONFIG.new_incidents_per_minute, config.CONFIG.new_incidents_burst)
"""New Incidents per namespace (``Config.new_incidents_*``); Alertmanager is told 429 and when to retry."""


async def write(
    api: apiserver.Api,
    payload: alerts.Payload,
    now: dt.datetime,
    operator_namespace: str,
    scope: cabc.Sequence[str],
    seen: Seen | None = None,
    known: Known = KNOWN,
) -> intake.Accepted:
    """Create or update the group's Incident; :class:`intake.Unavailable` when the API fails."""
    try:
        return await _write(api, payload, now, operator_namespace, scope, seen, known)
    except apiserver.ApiError as error:
        raise intake.Unavailable(f"Kubernetes API answered {error.status}: {error.message}") from error
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise intake.Unavailable(f"Kubernetes API unreachable: {error!r}") from error
    except incidents.ConflictsExhausted as error:
        raise intake.Unavailable(str(error)) from error


async def _write(
    api: apiserver.Api,
    payload: alerts.Payload,
    now: dt.datetime,
    operator_namespace: str,
    scope: cabc.Sequence[str],
    seen: Seen | None,
    known: Known,
) -> intake.Accepted:
    name = alerts.incident_name(payload)
    homes = alert_incident.homes(payload, operator_namespace, scope)
    present = set(seen.incidents if seen else ())
    if (last := known.get(name)) is not None:
        present.add(last)
    for namespace in alert_incident.lookups(homes, seen.covered if seen else (), present):
        raw = await workloads.incident(api, namespace, name)
        if raw is None:
            known.forget(name, namespace)
            continue
        known.put(name, namespace)
        found = incident.Incident.model_validate(raw)
        if (found.status is not None and found.status.detections) or not payload.firing:
            return await _record(api, namespace, name, payload, now, (), (), False, raw, seen, found)
        # created, but the first status write failed: this retry brings the checklist and notes
        opening = await _opening(api, payload, operator_namespace, scope, namespace, seen)
        return await _record(
            api, namespace, name, payload, now, opening.notes, opening.checklist, False, raw, seen, found
        )
    if not payload.firing:
        return intake.Accepted(incident="")  # the resolution of a group that never opened an Incident
    opening = await _opening(api, payload, operator_namespace, scope, None, seen)
    if (full := incident_cap.refusal(opening.namespace)) is not None:
        raise intake.Throttled(incident_cap.RETRY_SECONDS, full)
    wait = NEW_INCIDENTS.take(opening.namespace, time.monotonic())
    if wait:
        raise intake.Throttled(wait, f"namespace {opening.namespace} opened too many Incidents; retry in {wait:.0f}s")
    try:
        raw, created = await _create(api, opening)
    except apiserver.ApiError as error:
        if error.status != 404 or opening.namespace == operator_namespace:
            raise
        # the alert's namespace does not exist here (an alert about another cluster): ours then
        opening = await _opening(api, payload, operator_namespace, scope, operator_namespace, seen)
        raw, created = await _create(api, opening)
    known.put(name, opening.namespace)
    if created:
        incident_cap.created(opening.namespace, name)
    # AlreadyExists (a peer or a duplicate got there first): the notes and checklist apply only
    # if its first status write has not happened yet, which record() decides on the latest status
    # what was created is known without validating the answer: the spec sent, the server's metadata
    parsed = incidents.as_written(incident.Incident(spec=opening.spec), None, raw) if created else None
    return await _record(
        api, opening.namespace, name, payload, now, opening.notes, opening.checklist, created, raw, seen, parsed
    )


async def _opening(
    api: apiserver.Api,
    payload: alerts.Payload,
    operator_namespace: str,
    scope: cabc.Sequence[str],
    forced: str | None,
    seen: Seen | None,
) -> alert_incident.Opening:
    home = forced or alert_incident.home(alert_incident.shared_labels(payload), operator_namespace, scope)
    namespaces = list(dict.fromkeys([home, operator_namespace]))
    covered = seen.covered if seen else frozenset()
    found = [
        rb
        for ns in namespaces
        for rb in (_indexed(seen, ns) if ns in covered else await indices.list_runbooks(api, ns))
    ]
    opening = alert_incident.opening(payload, found, operator_namespace, scope, forced)
    if opening.spec.runbook_ref is None and covered.intersection(namespaces):
        # none in the index: ask the API, the index may not have seen a Runbook just applied
        found = [rb for ns in namespaces for rb in await indices.list_runbooks(api, ns)]
        opening = alert_incident.opening(payload, found, operator_namespace, scope, forced)
    return opening


def _indexed(seen: Seen | None, namespace: str) -> list[Candidate]:
    return [rb for rb in (seen.runbooks if seen else ()) if rb[0] == namespace]


async def _record(
    api: apiserver.Api,
    namespace: str,
    name: str,
    payload: alerts.Payload,
    now: dt.datetime,
    notes: cabc.Sequence[str],
    checklist: cabc.Sequence[str],
    created: bool,
    raw: cabc.Mapping[str, Any],
    seen: Seen | None,
    parsed: incident.Incident | None = None,
) -> intake.Accepted:
    claimed: list[escalation.Send] = []

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        flap = seen.flap(current) if seen is not None and seen.flap is not None else noise.DEFAULT_FLAP
        status = alert_incident.record(current.spec, current.status, payload, now, notes, checklist, flap)
        verdict = seen.ready(current.spec, namespace) if seen is not None and seen.ready is not None else None
        status = lifecycle.first_ready(status, verdict, current.metadata.generation, now)
        claimed.clear()
        opening = status is not None and status.phase is not None and not (current.status and current.status.phase)
        if opening and seen is not None and seen.claim is not None:
            decision = seen.claim(current.model_copy(update={"status": status}), raw, now)
            if decision is not None:
                status, claimed[:] = decision.status, decision.sends
        return status

    written = await incidents.update_status_async(api, namespace, name, mutate, known=raw, parsed=parsed)
    if written is None:
        raise intake.Unavailable(f"Incident {namespace}/{name} was deleted while being written")
    if claimed and written.changed and seen is not None and seen.hand is not None:
        seen.hand(written, claimed)
    phase = str((written.raw.get("status") or {}).get("phase") or "")  # not validated again: only its phase is read
    return intake.Accepted(f"{namespace}/{name}", created, written.changed, phase)


async def _create(api: apiserver.Api, opening: alert_incident.Opening) -> tuple[dict[str, Any], bool]:
    """The Incident as created, or as it already was under that name; the bool says 'created'."""
    try:
        return await incidents.create_async(api, opening.namespace, opening.name, opening.spec, opening.labels)
    except incidents.ConflictsExhausted as error:
        raise intake.Unavailable(str(error)) from error


def snapshot(ctx: context.Context, names: cabc.Mapping[str, Any], payload: alerts.Payload) -> Seen | None:
    """The indices' view for this delivery, or None while they are not filled or this replica stands by.

    ``names`` is Kopf's index of Incident names (name -> their namespaces), read on the event loop.
    """
    candidates = ctx.indices.runbook_candidates() if peering.acting() else None
    where = names.get(alerts.incident_name(payload), ()) if candidates is not None else ()
    cfg = ctx.config
    ready = ctx.indices.verdict if candidates is not None else None
    found = seen(payload, cfg.namespace, cfg.watch_namespaces, candidates, where, ready)
    if found is None:
        return None

    def flap(inc: incident.Incident) -> noise.Flap:
        policy = ctx.indices.policy_for(inc)
        return noise.Flap.of(policy[1] if policy else None)

    def hand(written: incidents.Written, sends: cabc.Sequence[escalation.Send]) -> None:
        ctx.incidents.hand(ctx, written, sends)

    return dataclasses.replace(found, flap=flap, claim=claiming.at_opening(ctx), hand=hand)


async def accept(ctx: context.Context, names: cabc.Mapping[str, Any], payload: alerts.Payload) -> intake.Accepted:
    """The intake's write: one delivery into its Incident, through the intake's own client."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cfg = ctx.config
    return await write(ctx.intake_api, payload, now, cfg.namespace, cfg.watch_namespaces, snapshot(ctx, names, payload))


def token(ctx: context.Context) -> intake.Token | None:
    """The bearer token the intake requires, read from its Secret (None: no Secret configured)."""
    cfg = ctx.config
    if not cfg.intake_token_secret:
        return None

    async def read() -> str:
        try:
            value: str | None = await asyncio.to_thread(
                ctx.kube.secret_value, cfg.namespace, cfg.intake_token_secret, TOKEN_KEY
            )
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise intake.Unavailable(
                f"Secret {cfg.namespace}/{cfg.intake_token_secret} not readable: {error}"
            ) from error
        if not value:
            raise intake.Unavailable(f"Secret {cfg.namespace}/{cfg.intake_token_secret} has no key {TOKEN_KEY!r}")
        return value.strip()

    return intake.Token(read)


class Readiness:
    """Ready once the operator has started and the API server answers (asked at most every 5 s)."""

    def __init__(self, ctx: context.Context) -> None:
        self.ctx = ctx
        self._checked, self._reason = 0.0, "not checked yet"

    async def __call__(self) -> str | None:
        if time.monotonic() - self._checked >= READY_CACHE_SECONDS:
            self._reason = await asyncio.to_thread(self._probe)
            self._checked = time.monotonic()
        return self._reason or None

    def _probe(self) -> str:
        try:
            kubernetes.client.VersionApi(self.ctx.kube.api).get_code(_request_timeout=5)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            return f"Kubernetes API not reachable: {error}"
        return ""
