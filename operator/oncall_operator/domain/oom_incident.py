"""The Incident an OOM-killed workload gets, and how each kill and action is written into it.

One open Incident per workload and trigger, under a deterministic name (``oom-<kind>-<name>-<hash>``)
so that two operators or a retry meet AlreadyExists instead of opening a second one. Every kill
is appended to it (occurrences, detections, timeline) and its key goes into
``status.guardrails.seen``, which is what makes a kill count once across re-listings and
restarts. ``record`` is applied to the *latest* Incident inside an optimistic-concurrency loop,
so it re-checks the keys against what it is given and returns None when there is nothing new.

Phases: a counted kill turns Mitigated back into Triggered and Resolved into Reopened; an
applied action makes it Mitigated unless a human is needed (a restart at the cap), because
the escalation engine treats Mitigated as handled. The condition ``NeedsHuman`` says when the
automation stopped and why, and pages (:func:`lifecycle.page_human`): an Incident is never
Mitigated while it holds. A kill of a Resolved Incident is a new round: the escalation starts
again at level 1 and the raises count from 0. ``settle`` resolves a mitigated Incident (an
acknowledgement does not stop it) once the workload's rollout has been complete, with no new
kill, for the runbook's quiet period, and pages when the rollout has not completed within the
runbook's ``rolloutDeadline``.
"""

import collections.abc as cabc
import datetime as dt
import hashlib
import re
from typing import Any

from oncall_operator.api import base, durations, incident, runbook
from oncall_operator.domain import inplace, lifecycle, matching, oom, oom_plan

TRIGGER_LABEL = "oncall.dev/trigger"
KIND_LABEL = "oncall.dev/workload-kind"
NEEDS_HUMAN = lifecycle.NEEDS_HUMAN
SEEN_MAX, DETECTIONS_MAX, ACTIONS_MAX, TIMES_MAX = 200, 100, 200, 100
Phase = incident.Phase


def incident_name(kind: str, namespace: str, name: str) -> str:
    """``oom-<kind>-<name>-<8 hex of namespace/kind/name>``: a DNS label of at most 63 characters."""
    digest = hashlib.sha256(f"{namespace}/{kind}/{name}".encode()).hexdigest()[:8]
    prefix = f"oom-{kind.lower()}-"
    room = 63 - len(prefix) - 1 - len(digest)
    safe = re.sub(r"[^a-z0-9-]", "-", name.lower())[:room].strip("-")
    return f"{prefix}{safe}-{digest}" if safe else f"{prefix}{digest}"


def labels(kind: str) -> dict[str, str]:
    return {
        TRIGGER_LABEL: runbook.TriggerEvent.OOM_KILLED.value,
        KIND_LABEL: kind.lower(),
        "app.kubernetes.io/managed-by": "oncall-operator",
    }


def _ref(name: str, namespace: str, home: str) -> base.ObjectRef:
    return base.ObjectRef(name=name, namespace=None if namespace == home else namespace)


def spec(
    pod: oom.PodFacts, kill: oom.Kill, kind: str, name: str, chosen: matching.Chosen | None
) -> incident.IncidentSpec:
    ns = pod.namespace
    policy = chosen.spec.escalation_policy_ref if chosen else None
    return incident.IncidentSpec(
        title=f"{kind} {ns}/{name}: container {kill.container} OOMKilled",
        severity=chosen.spec.severity if chosen else base.Severity.WARNING,
        source=incident.Source(
            type=incident.SourceType.OOM_KILL,
            labels={
                "reason": oom.OOM_REASON,
                "namespace": ns,
                "workload": name,
                "workload_type": kind.lower(),
                "container": kill.container,
            },
        ),
        target=incident.Target(kind=kind, namespace=ns, name=name, container=kill.container),
        runbook_ref=_ref(chosen.name, chosen.namespace, ns) if chosen else None,
        escalation_policy_ref=_ref(policy.name, chosen.namespace, ns) if chosen and policy else None,
        description=chosen.spec.description if chosen else "",
    )


def _fresh(
    spec: incident.IncidentSpec, status: incident.IncidentStatus | None, now: dt.datetime
) -> tuple[incident.IncidentStatus, int]:
    """A copy to change, and the kills counted so far (``opened`` counts its own creation as 1)."""
    if status is None or status.phase is None:
        return lifecycle.opened(spec, now), 0
    out = status.model_copy(deep=True)
    return out, out.occurrences if out.guardrails.seen else 0


def record(
    spec: incident.IncidentSpec,
    status: incident.IncidentStatus | None,
    plan: oom_plan.Plan,
    out: oom_plan.Outcome,
    now: dt.datetime,
    pod: str,
    checklist: cabc.Sequence[str] = (),
) -> incident.IncidentStatus | None:
    """The status with ``plan``'s new kills and ``out`` recorded, or None when they are recorded already."""
    st, counted = _fresh(spec, status, now)
    seen = list(st.guardrails.seen)
    new = [k for k in plan.new if k.key not in set(seen)]
    if not new and not plan.follow_up:
        return None
    if not st.checklist and checklist:
        st.checklist = [incident.ChecklistItem(title=t[:512]) for t in checklist[:50]]
    if new:
        st.occurrences, st.last_seen = counted + len(new), now
    st.guardrails.seen = (seen + [k.key for k in new])[-SEEN_MAX:]
    for k in new:
        st.detections = [
            *st.detections,
            incident.Detection(
                at=now,
                key=k.key,
                pod=pod,
                container=k.container,
                restart_count=k.restart_count,
                finished_at=k.finished_at,
                limit=k.limit or "",
                request=k.request or "",
            ),
        ][-DETECTIONS_MAX:]
        lifecycle.add(
            st,
            now,
            oom.OOM_REASON,
            f"container {k.container} of pod {pod} OOM-killed (restart {k.restart_count}, finished "
            f"{k.finished_at or 'unknown'}, limit {k.limit or 'none'}, request {k.request or 'none'})",
        )
    if st.phase == Phase.RESOLVED:  # a new round: its escalation and its caps start again
        lifecycle.new_round(st, now, "OOM-killed again after it was resolved")
        st.guardrails.raises = 0
        if lifecycle.human_needed(st):
            lifecycle.needs_human(st, False, "Reopened", "a new round", now)
    if out.state is None:
        lifecycle.add(st, now, plan.reason or "Recorded", out.message)
        return st
    if st.phase == Phase.MITIGATED:
        st.phase = Phase.TRIGGERED
    st.guardrails.healthy_since = None
    change = plan.change
    st.actions = [
        *st.actions,
        incident.ActionRecord(
            at=now,
            action=change.action if change else "",
            type=change.type.value if change and change.type else "",
            state=out.state,
            before=change.before if change else "",
            after=change.after if change else "",
            reason=f"{out.reason}: {out.message}"[:4096],
            patch=change.patch[:8192] if change and change.ops else "",
            occurrence=plan.kill.key if plan.kill else "",
        ),
    ][-ACTIONS_MAX:]
    lifecycle.add(st, now, f"Action{out.state.value}", f"{out.reason}: {out.message}")
    if out.state == incident.ActionState.APPLIED:
        st.guardrails.last_action_at = now
        st.guardrails.action_times = [*st.guardrails.action_times, now][-TIMES_MAX:]
        if change and change.type == runbook.ActionType.RAISE_MEMORY_LIMIT:
            st.guardrails.raises += 1
        if not out.needs_human:
            st.phase = Phase.MITIGATED
    if out.needs_human:
        lifecycle.page_human(st, out.reason, out.message, now)
    elif out.state == incident.ActionState.APPLIED:
        lifecycle.needs_human(st, False, "Mitigated", out.message, now)
    return st


WAITING = ("RolloutOnDelete", "RolloutStuck")
"""``NeedsHuman`` reasons that a completed rollout ends by itself: the change is applied, the pods wait."""


def settling(body: cabc.Mapping[str, Any]) -> bool:
    """Whether :func:`settle` has anything to look at in this Incident (cheap: the raw body, no parsing).

    Mitigated; or Acknowledged by a person after the automation mitigated it (an acknowledgement
    never stops the auto-resolve); or waiting for a rollout that a human was paged about.
    """
    status: cabc.Mapping[str, Any] = body.get("status") or {}
    phase = status.get("phase")
    conditions: list[cabc.Mapping[str, Any]] = status.get("conditions") or []
    human: cabc.Mapping[str, Any] = next((c for c in conditions if c.get("type") == NEEDS_HUMAN), {})
    if human.get("status") == "True":
        return phase != Phase.RESOLVED and human.get("reason") in WAITING
    if phase == Phase.MITIGATED:
        return True
    actions: list[cabc.Mapping[str, Any]] = status.get("actions") or []
    return phase == Phase.ACKNOWLEDGED and bool(actions) and actions[-1].get("state") == incident.ActionState.APPLIED


def settle(
    status: incident.IncidentStatus | None,
    complete: bool,
    quiet: dt.timedelta,
    now: dt.datetime,
    deadline: dt.timedelta | None = None,
) -> incident.IncidentStatus | None:
    """Resolve a mitigated Incident after ``quiet`` of complete rollout; None when nothing changes.

    A rollout still incomplete ``deadline`` after the last action pages a human (``RolloutStuck``);
    one that completes afterwards (or after a human deleted the pods of an ``OnDelete`` workload)
    is Mitigated again, and the quiet period runs. An in-place resize the kubelet has not been seen
    to complete is not a complete rollout (its follow-up may still patch the template).
    """
    if status is None or status.phase == Phase.RESOLVED:
        return None
    complete = complete and not inplace.awaiting(status)  # a resize is rolled out once the kubelet has done it
    human = next((c for c in status.conditions if c.type == NEEDS_HUMAN and c.status == "True"), None)
    if human is not None:
        if human.reason not in WAITING or not complete:
            return None
        st = status.model_copy(deep=True)
        lifecycle.needs_human(st, False, "RolloutComplete", "the change has rolled out", now)
        if st.phase != Phase.ACKNOWLEDGED:
            st.phase = Phase.MITIGATED
        st.guardrails.healthy_since = now
        lifecycle.add(st, now, "RolloutComplete", "every pod runs the changed template")
        return st
    if status.phase == Phase.ACKNOWLEDGED and not (status.actions and status.actions[-1].state == "Applied"):
        return None
    if status.phase not in (Phase.MITIGATED, Phase.ACKNOWLEDGED):
        return None
    since = status.guardrails.healthy_since
    st = status.model_copy(deep=True)
    if not complete:
        last = status.guardrails.last_action_at
        if deadline is not None and last is not None and now - last >= deadline:
            text = f"the rollout has not completed {durations.render(deadline)} after the change ({last.isoformat()})"
            lifecycle.page_human(st, "RolloutStuck", text + ": pods Pending, failing, or waiting for deletion?", now)
            st.guardrails.healthy_since = None
            return st
        if since is None:
            return None
        st.guardrails.healthy_since = None
        return st
    if since is None:
        st.guardrails.healthy_since = now
        return st
    if now - since < quiet:
        return None
    st.phase, st.resolved_at, st.resolved_by = Phase.RESOLVED, now, "oncall-operator"
    lifecycle.add(st, now, "Resolved", f"the new pods have run without an OOM kill since {since.isoformat()}")
    if any(c.type == NEEDS_HUMAN for c in st.conditions):
        lifecycle.needs_human(st, False, "Resolved", "resolved after the quiet period", now)
    return st
