"""The imperative shell of runbook actions on alert Incidents: read, plan, dry-run, write, record.

For one Incident event: under the target workload's lock (the same locks as the OOM
remediation, so an OOM raise and a rollback of one Deployment never interleave), read the
latest Incident and ask :func:`domain.actions.next_action` what is due in this round; read only
what that action needs (the workload and its ReplicaSets or ControllerRevisions for a rollback,
the HPAs for a scale, the flag ConfigMap, the namespace's annotations); ``plan``; then the
server-side dry-run of the exact patch (and of a pod of a rolled-back template, which
LimitRange, quota and webhooks judge), the patch, the Incident write, the metric and the
Events. A ``notify`` goes through the escalation's own dispatcher
(:mod:`adapters.notifiers.dispatch`) to the policy's channel.

One action per pass: the Incident write is itself an event, and the next pass takes the next
action, so every step is on the Incident before the following one starts, and a restarted
operator resumes from the Incident alone. A ``test`` operation that fails (the object changed
between the read and the patch) re-reads and re-plans.
"""

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import logging
from typing import Any

import aiohttp
import kubernetes

from oncall_operator import executor
from oncall_operator.adapters import incidents, kube, metrics, workloads
from oncall_operator.adapters.notifiers import dispatch
from oncall_operator.api import GROUP, VERSION, incident, kinds, policy, runbook
from oncall_operator.domain import actions, escalation, matching, workload

log = logging.getLogger(__name__)
ActionType = runbook.ActionType


@dataclasses.dataclass(frozen=True)
class Policy:
    namespace: str
    spec: policy.EscalationPolicySpec


class _Retry(Exception):
    """A ``test`` operation failed: the object changed since it was read."""


async def run(
    k: kube.Kube,
    state: executor.OomState,
    http: aiohttp.ClientSession,
    body: cabc.Mapping[str, Any],
    chosen: matching.Chosen,
    found: Policy | None,
    opts: executor.Options,
) -> actions.Plan | None:
    """Take the Incident's next due action, if any; returns the plan run."""
    inc = incident.Incident.model_validate(dict(body))
    if actions.next_action(chosen.spec, inc.status) is None:
        return None  # nothing due: no API call at all
    api = state.client(k)
    t = inc.spec.target
    key = f"{t.namespace}/{t.kind}/{t.name}" if t.name else f"incident/{inc.metadata.namespace}/{inc.metadata.name}"
    for attempt in range(4):
        try:
            async with state.lock(key):
                return await _once(k, api, http, inc, chosen, found, opts, last=attempt >= 2)
        except _Retry:
            continue
        except (workloads.ApiError, kubernetes.client.ApiException, incidents.ConflictsExhausted) as error:
            status = getattr(error, "status", 409)
            if attempt < 3 and status in (*executor.TRANSIENT, 409):
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            # e.g. RBAC: one clear line; the next event on the Incident tries again
            log.error("runbook action for %s/%s not run: %s", inc.metadata.namespace, inc.metadata.name, error)
            return None
        except (aiohttp.ClientError, TimeoutError) as error:
            if attempt == 3:
                raise
            log.warning("runbook action for %s/%s: %r, retrying", inc.metadata.namespace, inc.metadata.name, error)
            await asyncio.sleep(0.5 * 2**attempt)
    return None


async def _once(
    k: kube.Kube,
    api: workloads.Api,
    http: aiohttp.ClientSession,
    seen: incident.Incident,
    chosen: matching.Chosen,
    found: Policy | None,
    opts: executor.Options,
    last: bool,
) -> actions.Plan | None:
    ns, name = seen.metadata.namespace, seen.metadata.name
    raw = await workloads.incident(api, ns, name)
    if raw is None:
        return None
    inc = incident.Incident.model_validate(raw)
    due = actions.next_action(chosen.spec, inc.status)
    if due is None:
        return None
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    facts = await _facts(api, inc, due.action, found, opts, now)
    p = actions.plan(inc, chosen, due, facts)
    rejected = failed = None
    obj = facts.config_map if due.action.type == ActionType.SET_FEATURE_FLAG else facts.target
    if p.mode in (actions.Mode.APPLY, actions.Mode.DRY_RUN):
        assert p.change is not None
        rejected = await _dry_runs(api, p.change, facts, last)
        if p.mode == actions.Mode.APPLY and rejected is None:
            failed = await _patch(api, p.change, last)
    elif p.mode == actions.Mode.NOTIFY:
        assert p.message is not None and found is not None
        failed = await _notify(k, http, inc, p, found, now)
    out = actions.outcome(p, rejected, failed)

    def mutate(current: incident.Incident) -> incident.IncidentStatus | None:
        return actions.record(current.status, p, out, now)

    written = await asyncio.to_thread(incidents.update_status, k, ns, name, mutate)
    log.info("runbook %s action %s for %s/%s: %s %s", chosen.name, due.action.name, ns, name, out.state, out.text)
    if written is not None and written.changed:
        metrics.record_remediation(due.action.type.value, out.state.value)
        _events(written.incident, obj, p, out)
    return p


async def _none() -> None:
    return None


async def _nothing() -> list[dict[str, Any]]:
    return []


async def _facts(
    api: workloads.Api,
    inc: incident.Incident,
    action: runbook.Action,
    found: Policy | None,
    opts: executor.Options,
    now: dt.datetime,
) -> actions.Facts:
    t = inc.spec.target
    if action.type == ActionType.NOTIFY:
        return actions.Facts(now=now, policy=found.spec if found else None)
    if action.type == ActionType.SET_FEATURE_FLAG:
        settings = action.set_feature_flag
        assert settings is not None
        where = actions.flag_namespace(inc)
        cm, ns_annotations = await asyncio.gather(
            workloads.read(api, "ConfigMap", where, settings.config_map),
            workloads.namespace_annotations(api, where),
        )
        return actions.Facts(
            now=now,
            config_map=cm,
            namespace_annotations=ns_annotations,
            in_scope=matching.in_scope(where, opts.watch_namespaces),
            dry_run=opts.dry_run,
        )
    if action.type not in (ActionType.ROLLBACK, ActionType.SCALE) or t.kind not in workload.SUPPORTED or not t.name:
        return actions.Facts(now=now, dry_run=opts.dry_run)
    history = "ReplicaSet" if t.kind == "Deployment" else "ControllerRevision"
    obj, ns_annotations, revisions, hpas = await asyncio.gather(
        workloads.read(api, t.kind, t.namespace, t.name),
        workloads.namespace_annotations(api, t.namespace),
        workloads.list_items(api, history, t.namespace) if action.type == ActionType.ROLLBACK else _nothing(),
        workloads.list_items(api, "HorizontalPodAutoscaler", t.namespace)
        if action.type == ActionType.SCALE
        else _nothing(),
    )
    return actions.Facts(
        now=now,
        target=obj,
        replica_sets=tuple(revisions) if history == "ReplicaSet" else (),
        controller_revisions=tuple(revisions) if history == "ControllerRevision" else (),
        hpas=tuple(hpas),
        namespace_annotations=ns_annotations,
        in_scope=matching.in_scope(t.namespace, opts.watch_namespaces),
        dry_run=opts.dry_run,
    )


async def _dry_runs(api: workloads.Api, change: actions.Change, facts: actions.Facts, last: bool) -> str | None:
    """Why the API server would refuse the patch (or a pod of the new template), or None."""
    calls = [workloads.patch(api, change.kind, change.namespace, change.name, list(change.ops), True)]
    if change.template is not None and facts.target is not None:
        probe = workload.probe_pod(workload.read(facts.target), change.template)
        calls.append(workloads.dry_run_pod(api, change.namespace, probe))
    results = await asyncio.gather(*calls, return_exceptions=True)
    problems = []
    for what, result in zip((f"the {change.kind} patch", "a pod of the new template"), results, strict=False):
        if isinstance(result, workloads.ApiError):
            if what.endswith("patch") and result.status == 422 and not last:
                raise _Retry()
            if result.status in executor.TRANSIENT:
                raise result
            problems.append(f"{what}: {result.message}")
        elif isinstance(result, BaseException):
            raise result
    return "; ".join(problems) or None


async def _patch(api: workloads.Api, change: actions.Change, last: bool) -> str | None:
    try:
        await workloads.patch(api, change.kind, change.namespace, change.name, list(change.ops), False)
    except workloads.ApiError as error:
        if error.status in (409, 422) and not last:
            raise _Retry() from error
        if error.status in executor.TRANSIENT:
            raise
        return f"the {change.kind} patch failed: {error.message}"
    return None


async def _notify(
    k: kube.Kube,
    http: aiohttp.ClientSession,
    inc: incident.Incident,
    p: actions.Plan,
    found: Policy,
    now: dt.datetime,
) -> str | None:
    """Send through the escalation's dispatcher; the failure's words, or None when delivered."""
    assert p.message is not None
    send = escalation.Send(
        key=f"action/{p.round}/{p.action.name}",
        kind="notify",
        level=0,
        loop=0,
        channels=p.message.channels,
        recipients=p.message.recipients,
        text=p.message.text,
    )

    async def secret(channel: policy.Channel) -> str | None:
        ref = channel.secret_ref
        assert ref is not None
        value: str | None = await asyncio.to_thread(k.secret_value, found.namespace, ref.name, ref.key)
        return value

    results = await dispatch.deliver([send], inc, found.spec, secret, http, now)
    metrics.record_escalation([send], results, found.spec)  # counts the deliveries; a notify is no page
    bad = [r.detail for r in results if not r.ok]
    return "; ".join(bad) if bad or not results else None


def _events(
    inc: incident.Incident,
    obj: cabc.Mapping[str, Any] | None,
    p: actions.Plan,
    out: actions.Outcome,
) -> None:
    state = out.state
    if state == incident.ActionState.APPLIED:
        reason = {
            ActionType.ROLLBACK: "RolledBack",
            ActionType.SCALE: "ScaledUp",
            ActionType.SET_FEATURE_FLAG: "FeatureFlagSet",
            ActionType.NOTIFY: "Notified",
        }.get(p.action.type, "ActionApplied")
    else:
        reason = f"Remediation{state.value}"
    warning = out.needs_human or state in (incident.ActionState.REFUSED, incident.ActionState.FAILED)
    text = f"runbook action {p.action.name} for incident {inc.metadata.name}: {out.reason}: {out.text}"
    if obj is not None and p.action.type != ActionType.NOTIFY:
        meta = obj.get("metadata") or {}
        ref = {
            "apiVersion": obj.get("apiVersion", "v1"),
            "kind": obj.get("kind", ""),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        }
        workloads.post_event(ref, warning, reason, text)
    inc_ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kinds.INCIDENT.kind,
        "metadata": {"name": inc.metadata.name, "namespace": inc.metadata.namespace, "uid": inc.metadata.uid},
    }
    workloads.post_event(inc_ref, warning, reason, text)
