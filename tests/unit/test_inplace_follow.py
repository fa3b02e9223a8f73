"""After an in-place resize: Infeasible, Deferred (noted, then past the deadline), stuck in progress, completed."""

import datetime as dt
from typing import Any

from oncall_operator.api import incident
from oncall_operator.domain import oom, oom_incident, oom_plan
from tests.unit import test_oom_plan as t
from tests.unit.test_inplace import IN_PLACE, SPEC, applied, body, pod

Mode = oom_plan.Mode
DEFERRED = {
    "type": "PodResizePending",
    "status": "True",
    "reason": "Deferred",
    "message": "Node didn't have enough resource: memory",
}
INFEASIBLE = {
    "type": "PodResizePending",
    "status": "True",
    "reason": "Infeasible",
    "message": "Node didn't have enough capacity: memory",
}
ERROR = {
    "type": "PodResizeInProgress",
    "status": "True",
    "reason": "Error",
    "message": "runc: failed to write memory.limit_in_bytes",
}


def after(*conditions: dict[str, str], running: str | None = None) -> oom.PodFacts:
    """The resized pod (356Mi in its spec) as the kubelet then reports it."""
    return oom.read_pod(body({"limits": {"memory": "356Mi"}}, conditions=conditions, running=running))


def look(st: incident.IncidentStatus, p: oom.PodFacts, at: dt.datetime, **over: Any) -> oom_plan.Plan:
    return oom_plan.plan(t.situation(pod=p, status=st, runbook=t.book(IN_PLACE, **over), now=at))


def write(st: incident.IncidentStatus, plan: oom_plan.Plan, at: dt.datetime) -> incident.IncidentStatus:
    out = oom_incident.record(SPEC, st, plan, oom_plan.outcome(plan), at, "web-5f-abc")
    assert out is not None
    return out


def test_infeasible_falls_back_to_the_template_once() -> None:
    st = applied(None, pod())
    plan = look(st, after(INFEASIBLE), t.NOW)
    assert (plan.mode, plan.reason, plan.follow_up, plan.new) == (Mode.APPLY, "ResizeInfeasible", True, ())
    assert plan.change and plan.change.kind == "Deployment" and plan.change.after == "limits.memory=356Mi"
    assert "Node didn't have enough capacity" in plan.message
    st2 = write(st, plan, t.NOW)
    assert st2.actions[-1].reason.startswith("ResizeInfeasible:")
    assert st2.occurrences == st.occurrences and st2.last_seen == st.last_seen  # no new kill was counted
    assert look(st2, after(INFEASIBLE), t.NOW).mode == Mode.NOTHING


def test_infeasible_fallback_respects_the_opt_out_and_the_template_already_raised() -> None:
    st = applied(None, pod())
    opted = t.deployment(annotations={"oncall.dev/remediation": "disabled"})
    refused = oom_plan.plan(t.situation(pod=after(INFEASIBLE), status=st, runbook=t.book(IN_PLACE), workload=opted))
    assert (refused.mode, refused.reason, refused.needs_human) == (Mode.REFUSE, "OptedOut", True)
    raised = t.deployment(limit="356Mi")
    plan = oom_plan.plan(t.situation(pod=after(INFEASIBLE), status=st, runbook=t.book(IN_PLACE), workload=raised))
    assert plan.mode == Mode.NOTHING


def test_deferred_is_noted_once_then_falls_back_at_the_deadline() -> None:
    st = applied(None, pod())
    due = t.NOW + dt.timedelta(minutes=2)
    first = look(st, after(DEFERRED), t.NOW + dt.timedelta(seconds=5))
    assert (first.mode, first.reason, first.follow_up, first.recheck_at) == (Mode.RECORD, "ResizePending", True, due)
    assert "deferred the resize of pod web-5f-abc: Node didn't have enough resource: memory" in first.message
    st = write(st, first, t.NOW + dt.timedelta(seconds=5))
    assert st.timeline[-1].type == "ResizePending" and st.actions[-1].reason.startswith("ResizedInPlace")
    again = look(st, after(DEFERRED), t.NOW + dt.timedelta(seconds=60))
    assert (again.mode, again.recheck_at) == (Mode.NOTHING, due)  # no second note; the timer stays
    late = look(st, after(DEFERRED), due)
    assert (late.mode, late.reason, late.follow_up) == (Mode.APPLY, "ResizeDeferred", True)
    assert "is not done 2m after it was applied (PodResizePending Deferred: Node didn't have" in late.message
    assert late.change and late.change.kind == "Deployment" and late.change.after == "limits.memory=356Mi"
    st = write(st, late, due)
    assert look(st, after(DEFERRED), due + dt.timedelta(minutes=1)).mode == Mode.NOTHING


def test_the_deadline_is_the_runbooks_and_covers_a_resize_stuck_in_progress() -> None:
    st = applied(None, pod())
    thirty = {"guard": {"resizeDeadline": "30s"}}
    assert look(st, after(ERROR), t.NOW + dt.timedelta(seconds=29), **thirty).mode == Mode.NOTHING
    plan = look(st, after(ERROR), t.NOW + dt.timedelta(seconds=30), **thirty)
    assert (plan.mode, plan.reason) == (Mode.APPLY, "ResizeDeferred")
    assert "(PodResizeInProgress Error: runc: failed to write memory.limit_in_bytes)" in plan.message
    nothing_yet = look(st, after(), t.NOW + dt.timedelta(seconds=10))  # the kubelet has not said anything yet
    assert (nothing_yet.mode, nothing_yet.recheck_at) == (Mode.NOTHING, t.NOW + dt.timedelta(minutes=2))


def test_a_completed_resize_is_recorded_once_and_no_longer_followed() -> None:
    st = applied(None, pod())
    in_progress = {"type": "PodResizeInProgress", "status": "True", "reason": "", "message": ""}
    assert look(st, after(in_progress, running="256Mi"), t.NOW).mode == Mode.NOTHING
    done = look(st, after(running="356Mi"), t.NOW + dt.timedelta(seconds=3))
    assert (done.mode, done.reason, done.recheck_at) == (Mode.RECORD, "ResizeCompleted", None)
    assert "it runs with limits.memory=356Mi" in done.message
    st = write(st, done, t.NOW + dt.timedelta(seconds=3))
    assert st.timeline[-1].type == "ResizeCompleted" and st.phase == incident.Phase.MITIGATED
    later = look(st, after(running="356Mi"), t.NOW + dt.timedelta(minutes=5))
    assert (later.mode, later.recheck_at) == (Mode.NOTHING, None)


def test_a_resolved_incident_follows_nothing() -> None:
    st = applied(None, pod())
    st.phase = incident.Phase.RESOLVED
    assert look(st, after(INFEASIBLE), t.NOW + dt.timedelta(hours=1)) == oom_plan.Plan(Mode.NOTHING)


def test_the_incident_is_not_resolved_before_the_kubelet_has_done_the_resize() -> None:
    st = applied(None, pod())
    quiet = dt.timedelta(seconds=2)
    for at in (t.NOW + dt.timedelta(seconds=5), t.NOW + dt.timedelta(minutes=1)):
        assert oom_incident.settle(st, True, quiet, at) is None  # the workload is complete, the pod is not resized
    done_at = t.NOW + dt.timedelta(minutes=1)
    st = write(st, look(st, after(running="356Mi"), done_at), done_at)
    healthy = oom_incident.settle(st, True, quiet, done_at)
    assert healthy is not None and healthy.guardrails.healthy_since == done_at
    resolved = oom_incident.settle(healthy, True, quiet, done_at + quiet)
    assert resolved is not None and resolved.phase == incident.Phase.RESOLVED


def test_a_container_that_is_not_running_has_not_completed_a_resize() -> None:
    """For a container waiting to restart the kubelet reports what it allocated, not what runs."""
    st = applied(None, pod())
    waiting = body({"limits": {"memory": "356Mi"}}, running="356Mi")
    waiting["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    plan = look(st, oom.read_pod(waiting), t.NOW + dt.timedelta(seconds=5))
    assert (plan.mode, plan.recheck_at) == (Mode.NOTHING, t.NOW + dt.timedelta(minutes=2))
