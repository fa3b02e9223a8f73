"""In-place resize (strategy: InPlace): the pod's resize patch, resizePolicy, the QoS class, a second kill."""

import dataclasses
import datetime as dt
from typing import Any

from oncall_operator.api import incident
from oncall_operator.domain import oom, oom_incident, oom_plan
from tests.unit import test_oom_plan as t

Mode = oom_plan.Mode
IN_PLACE = {"strategy": "InPlace"}
SPEC = oom_incident.spec(t.pod(), t.pod().kills[0], "Deployment", "web", t.book({}))


def body(
    resources: dict[str, Any] | None = None,
    policy: str | None = None,
    conditions: tuple[dict[str, str], ...] = (),
    running: str | None = None,
    finished: str = t.FINISHED,
) -> dict[str, Any]:
    """A pod as the API server returns it: a sidecar, then ``app``, OOM-killed once."""
    app: dict[str, Any] = {"name": "app", "resources": resources or {"limits": {"memory": "256Mi"}}}
    if policy:
        app["resizePolicy"] = [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
        app["resizePolicy"].append({"resourceName": "memory", "restartPolicy": policy})
    term = {"reason": "OOMKilled", "exitCode": 137, "finishedAt": finished}
    status: dict[str, Any] = {"name": "app", "restartCount": 1, "lastState": {"terminated": term}}
    if running:
        status["resources"] = {"limits": {"memory": running}}
        status["state"] = {"running": {"startedAt": finished}}
    return {
        "metadata": {
            "name": "web-5f-abc",
            "namespace": "shop",
            "uid": t.UID,
            "creationTimestamp": "2026-01-05T09:00:00Z",
        },
        "spec": {"containers": [{"name": "sidecar", "resources": {}}, app]},
        "status": {"qosClass": "Burstable", "containerStatuses": [status], "conditions": list(conditions)},
    }


def pod(limit: str = "256Mi", **over: Any) -> oom.PodFacts:
    return oom.read_pod(body({"limits": {"memory": limit}}, **over))


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
    assert plan.recheck_at == t.NOW + dt.timedelta(minutes=2)  # the default resizeDeadline
    done = oom_plan.resized(plan)
    assert done.change is not None and done.change.kind == "Pod" and done.reason == "ResizedInPlace"
    assert "the template is unchanged, recommended: raise memory of container app" in done.message


def test_the_resize_policy_is_recorded() -> None:
    for policy, words in (
        (None, "without a restart (resizePolicy memory: NotRequired)"),
        ("NotRequired", "without a restart (resizePolicy memory: NotRequired)"),
        ("RestartContainer", "the container restarts to apply it (resizePolicy memory: RestartContainer)"),
    ):
        p = oom.read_pod(body(policy=policy))
        plan = oom_plan.plan(t.situation(pod=p, runbook=t.book(IN_PLACE)))
        assert plan.resize is not None and plan.resize.summary.endswith(words), (policy, plan.resize)
        st = oom_incident.record(
            SPEC, None, oom_plan.resized(plan), oom_plan.outcome(oom_plan.resized(plan)), t.NOW, "p"
        )
        assert st is not None and words in st.actions[-1].reason


def test_a_guaranteed_pods_request_rises_with_its_limit() -> None:
    """The template says limits only (requests default to them): the pod has both, and must keep them equal."""
    guaranteed = {"limits": {"memory": "256Mi", "cpu": "100m"}, "requests": {"memory": "256Mi", "cpu": "100m"}}
    p = oom.read_pod(body(guaranteed))
    p = dataclasses.replace(p, resources={"containers": [{"resources": guaranteed}]}, containers=("app",))
    w = t.workload.read(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "resources": {"limits": guaranteed["limits"]}}]}}
            },
        }
    )
    plan = oom_plan.plan(t.situation(pod=p, workload=w, runbook=t.book(IN_PLACE)))
    assert plan.change is not None and plan.change.after == "limits.memory=356Mi"  # the template needs no request
    assert plan.resize is not None and plan.resize.after == "limits.memory=356Mi requests.memory=356Mi"
    assert {"op": "replace", "path": "/spec/containers/0/resources/requests/memory", "value": "356Mi"} in list(
        plan.resize.ops
    )


def test_a_resize_that_would_change_the_qos_class_is_refused_and_the_template_patched() -> None:
    """allowQoSChange lets the template become Guaranteed (new pods); a running pod's class never changes."""
    res = {"limits": {"memory": "256Mi", "cpu": "100m"}, "requests": {"memory": "255Mi", "cpu": "100m"}}
    p = dataclasses.replace(
        oom.read_pod(body(res)), resources={"containers": [{"resources": res}]}, containers=("app",)
    )
    rule = {**IN_PLACE, "raiseRequest": True, "allowQosChange": True, "maxLimit": "300Mi"}
    w = t.deployment(limit="256Mi", request="255Mi", cpu="100m")
    plan = oom_plan.plan(t.situation(pod=p, workload=w, runbook=t.book(rule)))
    assert plan.mode == Mode.APPLY and plan.resize is None and plan.change is not None
    assert plan.change.kind == "Deployment" and plan.change.after == "limits.memory=300Mi requests.memory=300Mi"
    assert plan.message.startswith(
        "resizing pod web-5f-abc in place would change the pod's QoS class Burstable -> Guaranteed; instead: raise"
    ), plan.message


def test_the_template_strategy_and_the_cases_a_resize_cannot_answer_patch_the_template() -> None:
    assert oom_plan.plan(t.situation(pod=pod())).resize is None  # the default strategy
    init_kill = dataclasses.replace(pod().kills[0], init=True)
    gone = dataclasses.replace(pod(), containers=("other",))
    for p in (dataclasses.replace(pod(), kills=(init_kill,)), gone):
        plan = oom_plan.plan(t.situation(pod=p, runbook=t.book(IN_PLACE)))
        assert plan.resize is None and "QoS" not in plan.message
    assert oom_plan.plan(t.situation(pod=gone, runbook=t.book(IN_PLACE))).mode == Mode.APPLY


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


def test_a_second_kill_of_a_resized_pod_raises_the_template_from_what_it_runs_with() -> None:
    """Once the kubelet has done the resize, a kill means the new limit is not enough either (or, as on
    the real node, the pod's cgroup kept the old limit): the template, from what the pod runs with."""
    st = applied(None, pod())
    done = oom_plan.Plan(Mode.RECORD, (), pod().kills[0], None, "ResizeCompleted", "done", follow_up=True)
    st = oom_incident.record(SPEC, st, done, oom_plan.outcome(done), t.NOW.replace(minute=31), "p")
    assert st is not None
    later = t.NOW.replace(minute=45)
    again = oom.read_pod(body({"limits": {"memory": "356Mi"}}, finished="2026-01-05T09:40:00Z"))
    plan = oom_plan.plan(t.situation(pod=again, status=st, runbook=t.book(IN_PLACE), now=later))
    assert plan.mode == Mode.APPLY and plan.resize is None, plan.message  # not LimitManagedElsewhere
    assert plan.change and plan.change.kind == "Deployment" and plan.change.after == "limits.memory=456Mi"
    assert plan.message.startswith("pod web-5f-abc was resized in place before and killed since: new pods get")


def test_a_kill_before_the_resize_is_done_is_superseded() -> None:
    """The container was killed again (at its old limit) before the kubelet reported the resize done: no
    second raise; the resize's follow-up decides (seen on the real node: the first restart raced the resize)."""
    st = applied(None, pod())
    early = oom.read_pod(body({"limits": {"memory": "356Mi"}}, finished="2026-01-05T09:29:50Z"))  # before NOW
    plan = oom_plan.plan(t.situation(pod=early, status=st, runbook=t.book(IN_PLACE), now=t.NOW.replace(minute=31)))
    assert (plan.mode, plan.reason) == (Mode.RECORD, "Superseded"), plan.message
    assert "was resized in place (limits.memory=356Mi)" in plan.message
    assert plan.recheck_at == t.NOW + dt.timedelta(minutes=2)  # the follow-up's deadline still holds
    st2 = oom_incident.record(SPEC, st, plan, oom_plan.outcome(plan), t.NOW.replace(minute=31), early.name)
    assert st2 is not None and st2.actions == st.actions and st2.occurrences == 2  # counted, no action
    assert st2.phase == incident.Phase.MITIGATED


def test_what_the_kubelet_reports_is_what_the_pod_ran_with() -> None:
    """After an Infeasible resize and its fallback, the old pod's spec says 356Mi but it still runs with 256Mi:
    its next kill is superseded by the raised template (seen on the real node), not a raise at the cap."""
    p = oom.read_pod(body({"limits": {"memory": "356Mi"}}, running="256Mi", finished="2026-01-05T09:40:00Z"))
    assert (p.kills[0].limit, p.kills[0].ran_with) == ("356Mi", "256Mi")
    plan = oom_plan.plan(t.situation(pod=p, workload=t.deployment(limit="356Mi"), runbook=t.book(IN_PLACE)))
    assert (plan.mode, plan.reason) == (Mode.RECORD, "Superseded"), plan.message
    assert "ran with 256Mi; the template has 356Mi since" in plan.message
