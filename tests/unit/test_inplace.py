"""In-place resize (strategy: InPlace): the pod's resize patch, its record, a second kill, the Infeasible fallback."""

import dataclasses

from oncall_operator.api import incident
from oncall_operator.domain import oom, oom_incident, oom_plan
from tests.unit import test_oom_plan as t

Mode = oom_plan.Mode
IN_PLACE = {"strategy": "InPlace"}
SPEC = oom_incident.spec(t.pod(), t.pod().kills[0], "Deployment", "web", t.book({}))


def pod(limit: str = "256Mi", infeasible: str = "", kills: tuple[oom.Kill, ...] | None = None) -> oom.PodFacts:
    base = t.pod(limit=limit)
    return dataclasses.replace(
        base, containers=("sidecar", "app"), resize_infeasible=infeasible, kills=kills or base.kills
    )


def applied(status: incident.IncidentStatus | None, p: oom.PodFacts, **over: object) -> incident.IncidentStatus:
    """The kill planned, its resize applied as the executor does, and recorded."""
    plan = oom_plan.plan(t.situation(pod=p, status=status, runbook=t.book(IN_PLACE), **over))
    assert plan.mode == Mode.APPLY and plan.resize is not None, plan.message
    done = oom_plan.resized(plan)
    st = oom_incident.record(SPEC, status, done, oom_plan.outcome(done), t.NOW, p.name)
    assert st is not None
    return st


def test_in_place_resizes_the_pod_and_recommends_the_template() -> None:
    plan = oom_plan.plan(t.situation(pod=pod(), runbook=t.book(IN_PLACE)))
    assert plan.mode == Mode.APPLY and plan.resize is not None and plan.change is not None
    assert plan.change.kind == "Deployment" and plan.change.after == "limits.memory=356Mi"
    assert list(plan.resize.ops) == [  # the container's index in the pod, tests on what it runs with
        {"op": "test", "path": "/spec/containers/1/name", "value": "app"},
        {"op": "test", "path": "/spec/containers/1/resources/limits/memory", "value": "256Mi"},
        {"op": "replace", "path": "/spec/containers/1/resources/limits/memory", "value": "356Mi"},
    ]
    done = oom_plan.resized(plan)
    assert done.change is not None and done.change.kind == "Pod" and done.reason == "ResizedInPlace"
    assert "the template is unchanged, recommended: raise memory of container app" in done.message


def test_the_template_strategy_and_the_cases_a_resize_cannot_answer_patch_the_template() -> None:
    assert oom_plan.plan(t.situation(pod=pod())).resize is None  # the default strategy
    init_kill = dataclasses.replace(t.pod().kills[0], init=True)
    gone = dataclasses.replace(pod(), containers=("other",))
    for p in (pod(kills=(init_kill,)), gone):
        plan = oom_plan.plan(t.situation(pod=p, runbook=t.book(IN_PLACE)))
        assert plan.resize is None


def test_a_resize_is_a_raise_and_mitigates() -> None:
    st = applied(None, pod())
    [a] = st.actions
    assert (a.state, a.type, a.before, a.after) == (
        "Applied",
        "raiseMemoryLimit",
        "limits.memory=256Mi",
        "limits.memory=356Mi",
    )
    assert a.reason.startswith("ResizedInPlace:") and '"/spec/containers/1/resources/limits/memory"' in a.patch
    assert (st.phase, st.guardrails.raises) == (incident.Phase.MITIGATED, 1)


def test_a_second_kill_of_a_resized_pod_raises_from_what_it_runs_with() -> None:
    st = applied(None, pod())
    again = oom.Kill(f"{t.UID}/app/2026-01-05T09:40:00Z", "app", False, 2, "2026-01-05T09:40:00Z", 137, "356Mi", None)
    later = t.NOW.replace(minute=45)
    plan = oom_plan.plan(t.situation(pod=pod("356Mi", kills=(again,)), status=st, runbook=t.book(IN_PLACE), now=later))
    assert plan.mode == Mode.APPLY and plan.resize is not None, plan.message  # not LimitManagedElsewhere
    assert plan.resize.after == "limits.memory=456Mi" and plan.change and plan.change.after == "limits.memory=456Mi"


def test_infeasible_falls_back_to_the_template_once() -> None:
    st = applied(None, pod())
    stuck = pod("356Mi", infeasible="Node didn't have enough capacity: memory", kills=pod().kills)
    plan = oom_plan.plan(t.situation(pod=stuck, status=st, runbook=t.book(IN_PLACE)))
    assert (plan.mode, plan.reason, plan.fallback, plan.new) == (Mode.APPLY, "ResizeInfeasible", True, ())
    assert plan.change and plan.change.kind == "Deployment" and plan.change.after == "limits.memory=356Mi"
    assert "Node didn't have enough capacity" in plan.message
    after = oom_incident.record(SPEC, st, plan, oom_plan.outcome(plan), t.NOW, stuck.name)
    assert after is not None and after.actions[-1].reason.startswith("ResizeInfeasible:")
    assert after.occurrences == st.occurrences  # no new kill was counted
    assert oom_plan.plan(t.situation(pod=stuck, status=after, runbook=t.book(IN_PLACE))).mode == Mode.NOTHING


def test_infeasible_fallback_respects_the_opt_out_and_the_template_already_raised() -> None:
    st = applied(None, pod())
    stuck = pod("356Mi", infeasible="no room", kills=pod().kills)
    opted = t.deployment(annotations={"oncall.dev/remediation": "disabled"})
    refused = oom_plan.plan(t.situation(pod=stuck, status=st, runbook=t.book(IN_PLACE), workload=opted))
    assert (refused.mode, refused.reason, refused.needs_human) == (Mode.REFUSE, "OptedOut", True)
    raised = t.deployment(limit="356Mi")
    assert oom_plan.plan(t.situation(pod=stuck, status=st, runbook=t.book(IN_PLACE), workload=raised)).mode == (
        Mode.NOTHING
    )
