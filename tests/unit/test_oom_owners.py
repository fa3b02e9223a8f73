"""Every owner kind an OOM-killed pod can have, what each gets, and the recommendation without a limit."""

import dataclasses
from typing import Any

import pytest

from oncall_operator.api import incident
from oncall_operator.domain import oom, oom_plan, workload
from tests.unit import test_oom_plan as t

Mode = oom_plan.Mode
CRON = "/spec/jobTemplate/spec/template/spec/containers/0"


def owner(kind: str, strategy: str = "", limit: str | None = "256Mi", request: str | None = None) -> workload.Workload:
    """A workload of ``kind`` with the test deployment's template, where ``kind`` keeps it."""
    base = t.deployment(limit=limit, request=request)
    template = dict(base.template)
    obj: dict[str, Any] = {
        "apiVersion": "batch/v1" if kind == "CronJob" else "apps/v1",
        "kind": kind,
        "metadata": {"name": "web", "namespace": "shop", "uid": "w-uid", "resourceVersion": "42", "annotations": {}},
        "spec": {"jobTemplate": {"spec": {"template": template}}} if kind == "CronJob" else {"template": template},
    }
    if strategy:
        obj["spec"]["strategy" if kind == "Deployment" else "updateStrategy"] = {"type": strategy}
    return workload.read(obj)


@pytest.mark.parametrize(
    ("kind", "strategy", "mode", "reason", "human", "path"),
    [
        ("Deployment", "RollingUpdate", Mode.APPLY, "Applied", False, t.C0),
        ("StatefulSet", "RollingUpdate", Mode.APPLY, "Applied", False, t.C0),
        ("StatefulSet", "OnDelete", Mode.APPLY, "RolloutOnDelete", True, t.C0),
        ("DaemonSet", "RollingUpdate", Mode.APPLY, "Applied", False, t.C0),
        ("DaemonSet", "OnDelete", Mode.APPLY, "RolloutOnDelete", True, t.C0),
        ("CronJob", "", Mode.APPLY, "Applied", False, CRON),
        ("Pod", "", Mode.REFUSE, "NoTemplate", True, None),
        ("Job", "", Mode.REFUSE, "NoTemplate", True, None),
        ("Rollout", "", Mode.REFUSE, "UnsupportedOwner", True, None),
    ],
)
def test_each_owner_kind(kind: str, strategy: str, mode: Mode, reason: str, human: bool, path: str | None) -> None:
    w = owner(kind, strategy) if kind in workload.SUPPORTED else None
    plan = oom_plan.plan(t.situation(target_kind=kind, workload=w))
    assert (plan.mode, plan.reason, plan.needs_human) == (mode, reason, human), plan.message
    if path is None:  # no write: a recommendation from the kill, and a page (needs_human)
        assert plan.change is None
        if kind != "Rollout":
            assert "recommended: recreate it with limits.memory=356Mi for container app" in plan.message
        return
    assert plan.change is not None
    assert {"op": "replace", "path": f"{path}/resources/limits/memory", "value": "356Mi"} in plan.change.ops
    if strategy == "OnDelete":
        assert "delete" in plan.message and "OnDelete" in plan.message
    out = oom_plan.outcome(plan)
    assert (out.state, out.needs_human) == (incident.ActionState.APPLIED, human)


def test_cronjob_probe_pod_is_its_job_template() -> None:
    w = owner("CronJob")
    assert w.template_path == "/spec/jobTemplate/spec/template" and w.containers[0].path == CRON
    probe = workload.probe_pod(w, w.template)
    assert probe["spec"]["containers"][0]["name"] == "app"


def test_restart_of_a_cronjob_is_refused_and_of_a_daemonset_patches_its_template() -> None:
    cron = oom_plan.plan(t.situation(target_kind="CronJob", workload=owner("CronJob"), runbook=t.book(restart=True)))
    assert (cron.mode, cron.reason, cron.needs_human) == (Mode.REFUSE, "NothingToRestart", True)
    ds = oom_plan.plan(t.situation(target_kind="DaemonSet", workload=owner("DaemonSet"), runbook=t.book(restart=True)))
    assert ds.mode == Mode.APPLY and ds.change
    assert any(op["path"].startswith("/spec/template/metadata/annotations") for op in ds.change.ops)


def kill_pod(limit: str | None, request: str | None, qos: str = "Burstable") -> oom.PodFacts:
    return dataclasses.replace(t.pod(limit=limit, request=request), qos_class=qos)


@pytest.mark.parametrize(
    ("template_request", "ran_limit", "ran_request", "qos", "opt_in", "reason", "limit"),
    [
        # the pod got a LimitRange default: the new limit is worked out from it
        (None, "256Mi", None, "Burstable", False, "NoMemoryLimit", "356Mi"),
        (None, "256Mi", None, "Burstable", True, "Applied", "356Mi"),
        # only a request: request x factor (or + minStep)
        ("600Mi", None, "600Mi", "Burstable", False, "NoMemoryLimit", "720Mi"),
        ("600Mi", None, "600Mi", "Burstable", True, "Applied", "720Mi"),
        # nothing to go by: no recommendation
        (None, None, None, "BestEffort", True, "NoMemoryLimit", None),
    ],
)
def test_missing_limit_is_recommended_and_set_only_when_the_runbook_opts_in(
    template_request: str | None,
    ran_limit: str | None,
    ran_request: str | None,
    qos: str,
    opt_in: bool,
    reason: str,
    limit: str | None,
) -> None:
    w = t.deployment(limit=None, request=template_request)
    s = t.situation(workload=w, pod=kill_pod(ran_limit, ran_request, qos), runbook=t.book({"setMissingLimit": opt_in}))
    plan = oom_plan.plan(s)
    assert plan.reason == reason, plan.message
    if limit is None:
        assert plan.change is None and "nothing to work a limit out from" in plan.message
        return
    assert plan.change is not None and plan.change.after == f"limits.memory={limit}"
    assert plan.mode == (Mode.APPLY if opt_in else Mode.REFUSE)
    if not opt_in:
        assert "recommended: set a memory limit on container app" in plan.message and plan.needs_human
    assert {"op": "add", "path": f"{t.C0}/resources/limits", "value": {"memory": limit}} in plan.change.ops


def test_missing_limit_on_a_container_without_resources_adds_the_map() -> None:
    w = workload.read(
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "annotations": {}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}},
        }
    )
    plan = oom_plan.plan(t.situation(workload=w, runbook=t.book({"setMissingLimit": True})))
    assert plan.mode == Mode.APPLY and plan.change
    assert {"op": "add", "path": f"{t.C0}/resources", "value": {"memory": "356Mi"}} not in plan.change.ops
    assert {"op": "add", "path": f"{t.C0}/resources", "value": {"limits": {"memory": "356Mi"}}} in plan.change.ops


def test_a_limit_that_would_change_the_qos_class_is_only_recommended() -> None:
    # BestEffort pod (no LimitRange), a request in the template only: adding a limit keeps Burstable
    w = t.deployment(limit=None, request="600Mi", cpu=None)
    ok = oom_plan.plan(t.situation(workload=w, pod=kill_pod(None, "600Mi"), runbook=t.book({"setMissingLimit": True})))
    assert ok.mode == Mode.APPLY
    # no request, no limit, but the pod ran with a limit: the template is BestEffort, the pod Guaranteed
    w2 = t.deployment(limit=None)
    refused = oom_plan.plan(
        t.situation(workload=w2, pod=kill_pod("256Mi", None, "Guaranteed"), runbook=t.book({"setMissingLimit": True}))
    )
    assert (refused.mode, refused.reason) == (Mode.REFUSE, "QoSChange")
    assert "recommended: set a memory limit" in refused.message


def vpa(kind: str = "Deployment", name: str = "web", mode: str | None = "Auto") -> dict[str, Any]:
    spec: dict[str, Any] = {"targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name}}
    if mode is not None:
        spec["updatePolicy"] = {"updateMode": mode}
    return {"metadata": {"name": "web-vpa"}, "spec": spec}


@pytest.mark.parametrize(
    ("vpas", "manages"),
    [
        ([], False),
        ([vpa()], True),
        ([vpa(mode=None)], True),  # no updatePolicy: the VPA's default acts
        ([vpa(mode="InPlaceOrRecreate")], True),
        ([vpa(mode="Initial")], True),
        ([vpa(mode="Off")], False),  # recommendations only: the operator acts
        ([vpa(name="other")], False),
        ([vpa(kind="StatefulSet")], False),
        ([{"spec": None}, {}], False),
    ],
)
def test_a_workload_a_vpa_manages_is_left_to_it(vpas: list[dict[str, Any]], manages: bool) -> None:
    manager = workload.vpa_manager(vpas, "Deployment", "web")
    assert (manager is not None) is manages
    if manager is None:
        return
    plan = oom_plan.left_to_vpa(oom_plan.plan(t.situation()), manager)
    assert (plan.mode, plan.reason, plan.needs_human) == (Mode.REFUSE, "ManagedByVPA", False)
    assert "VerticalPodAutoscaler web-vpa" in plan.message and "recommended: raise memory" in plan.message
    out = oom_plan.outcome(plan)
    assert (out.state, out.reason) == (incident.ActionState.REFUSED, "ManagedByVPA")


def test_a_changed_cronjob_counts_as_rolled_out() -> None:
    """A CronJob's status has no observedGeneration: its Incident must settle, not page RolloutStuck."""
    cron = {"kind": "CronJob", "metadata": {"generation": 2}, "spec": {}, "status": {"lastScheduleTime": "x"}}
    assert workload.rollout_complete(cron)
    daemonset = {"kind": "DaemonSet", "metadata": {"generation": 2}, "spec": {}, "status": {"observedGeneration": 1}}
    assert not workload.rollout_complete(daemonset)
