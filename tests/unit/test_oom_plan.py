"""plan(): every guardrail as a row of a table, and the exact patch when it is safe to act."""

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from oncall_operator.api import incident, runbook
from oncall_operator.domain import matching, oom, oom_plan, workload

Mode = oom_plan.Mode
NOW = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
UID, FINISHED = "pod-uid", "2026-01-05T09:29:00Z"
KEY = f"{UID}/app/{FINISHED}"
C0 = "/spec/template/spec/containers/0"


def deployment(
    limit: str | None = "256Mi",
    request: str | None = None,
    cpu: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    paused: bool = False,
    template_annotations: dict[str, str] | None = None,
) -> workload.Workload:
    resources: dict[str, Any] = {}
    if limit:
        resources.setdefault("limits", {})["memory"] = limit
    if request:
        resources.setdefault("requests", {})["memory"] = request
    if cpu:
        resources.setdefault("limits", {})["cpu"] = cpu
        resources.setdefault("requests", {})["cpu"] = cpu
    template_meta: dict[str, Any] = {"labels": {"app": "web"}}
    if template_annotations is not None:
        template_meta["annotations"] = template_annotations
    meta: dict[str, Any] = {"name": "web", "namespace": "shop", "uid": "d-uid", "resourceVersion": "42"}
    meta["labels"] = labels or {}
    meta["annotations"] = {"deployment.kubernetes.io/revision": "1"} if annotations is None else annotations
    return workload.read(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "paused": paused,
                "template": {
                    "metadata": template_meta,
                    "spec": {"containers": [{"name": "app", "image": "web:1", "resources": resources}]},
                },
            },
        }
    )


def pod(limit: str | None = "256Mi", request: str | None = None, created: str = "2026-01-05T09:00:00Z") -> Any:
    return oom.PodFacts(
        name="web-5f-abc",
        namespace="shop",
        uid=UID,
        created=created,
        labels={"app": "web"},
        annotations={},
        owner=oom.OwnerRef("apps/v1", "ReplicaSet", "web-5f", "rs-uid"),
        qos_class="Burstable",
        kills=(oom.Kill(KEY, "app", False, 1, FINISHED, 137, limit, request),),
    )


def book(
    raise_: dict[str, Any] | None = None,
    restart: bool = False,
    guard: dict[str, Any] | None = None,
    approval: str = "Automatic",
) -> matching.Chosen:
    actions: list[dict[str, Any]] = []
    if raise_ is not None:
        rule = {"maxLimit": "1Gi", **raise_}
        actions.append({"name": "raise", "type": "raiseMemoryLimit", "raiseMemoryLimit": rule, "approval": approval})
    if restart:
        actions.append({"name": "restart", "type": "restartRollout", "approval": approval})
    spec = runbook.RunbookSpec.model_validate(
        {"trigger": {"event": "OOMKilled"}, "actions": actions, "guardrails": {"cooldown": "5m", **(guard or {})}}
    )
    return matching.Chosen("shop", "oom", spec)


def status(
    raises: int = 0,
    last: dt.datetime | None = None,
    times: int = 0,
    seen: tuple[str, ...] = (),
    raised_ago: dt.timedelta = dt.timedelta(minutes=20),
) -> Any:
    """``raises`` applied raises, each ``raised_ago`` before NOW (the runbook's window is 1h)."""
    g = incident.Guardrails(
        raises=raises, last_action_at=last, action_times=[NOW - dt.timedelta(minutes=i + 10) for i in range(times)]
    )
    g.seen = list(seen)
    done = [
        incident.ActionRecord(at=NOW - raised_ago, action="raise", type="raiseMemoryLimit", state="Applied")
        for _ in range(raises)
    ]
    return incident.IncidentStatus(phase=incident.Phase.TRIGGERED, guardrails=g, actions=done)


def situation(**over: Any) -> oom_plan.Situation:
    base = oom_plan.Situation(
        pod=pod(),
        target_kind="Deployment",
        workload=deployment(),
        namespace_annotations={},
        runbook=book({}),
        status=None,
        dry_run=False,
        now=NOW,
    )
    return dataclasses.replace(base, **over)


def test_raise_is_the_exact_conditional_patch() -> None:
    plan = oom_plan.plan(situation())
    assert plan.mode == Mode.APPLY and plan.kill and plan.kill.key == KEY
    assert plan.change and (plan.change.before, plan.change.after) == ("limits.memory=256Mi", "limits.memory=356Mi")
    assert list(plan.change.ops) == [
        {"op": "test", "path": f"{C0}/name", "value": "app"},
        {"op": "test", "path": f"{C0}/resources/limits/memory", "value": "256Mi"},
        {"op": "replace", "path": f"{C0}/resources/limits/memory", "value": "356Mi"},
        {"op": "add", "path": "/metadata/annotations/oncall.dev~1remediated-kill", "value": KEY},
    ]
    assert json.loads(plan.change.patch) == list(plan.change.ops)
    assert plan.change.template["spec"]["containers"][0]["resources"]["limits"]["memory"] == "356Mi"
    assert not plan.needs_human


@pytest.mark.parametrize(
    ("old", "rule", "new"),
    [
        ("256Mi", {}, "356Mi"),  # old + 100Mi beats old x 1.2
        ("1000Mi", {"maxLimit": "4Gi"}, "1200Mi"),  # x 1.2 beats +100Mi
        ("1001Mi", {"maxLimit": "4Gi"}, "1202Mi"),  # 1201.2Mi rounded up to whole Mi
        ("900Mi", {}, "1Gi"),  # 1080Mi capped at maxLimit, written as the runbook wrote it
        ("256Mi", {"factor": 2.0, "minStep": "0"}, "512Mi"),
        ("0.25Gi", {}, "356Mi"),  # any notation in, whole Mi out
        ("268435456", {}, "356Mi"),
    ],
)
def test_vpa_rule_rounded_and_capped(old: str, rule: dict[str, Any], new: str) -> None:
    plan = oom_plan.plan(situation(workload=deployment(old), pod=pod(old), runbook=book(rule)))
    assert plan.mode == Mode.APPLY and plan.change and plan.change.after == f"limits.memory={new}"


@pytest.mark.parametrize(
    ("over", "reason", "human"),
    [
        ({"workload": None, "target_kind": "Pod"}, "NoTemplate", True),
        ({"workload": None, "target_kind": "Job"}, "NoTemplate", True),
        ({"workload": None, "target_kind": "Rollout"}, "UnsupportedOwner", True),
        ({"workload": None, "target_kind": "DaemonSet"}, "OwnerNotFound", True),
        ({"workload": None}, "OwnerNotFound", True),
        ({"runbook": None}, "NoRunbook", True),
        ({"runbook": book(None)}, "NoApplicableAction", True),
        ({"workload": deployment(limit=None), "pod": pod(limit=None)}, "NoMemoryLimit", True),
        ({"workload": deployment(limit=None), "pod": pod(limit="512Mi")}, "NoMemoryLimit", True),
        ({"workload": deployment("1Gi"), "pod": pod("1Gi")}, "AtCap", True),
        ({"workload": deployment("2Gi"), "pod": pod("2Gi")}, "AtCap", True),  # above the cap: never lowered
        ({"status": status(raises=3)}, "RaiseLimitReached", True),
        ({"runbook": book({"maxRaises": 1}), "status": status(raises=1)}, "RaiseLimitReached", True),
        ({"workload": deployment(annotations={"oncall.dev/remediation": "disabled"})}, "OptedOut", True),
        ({"namespace_annotations": {"oncall.dev/remediation": "Disabled"}}, "OptedOut", True),
        ({"workload": deployment(paused=True)}, "Paused", True),
        ({"workload": deployment(labels={"argocd.argoproj.io/instance": "shop"})}, "GitOpsManaged", True),
        ({"workload": deployment(annotations={"argocd.argoproj.io/tracking-id": "x"})}, "GitOpsManaged", True),
        ({"workload": deployment(labels={"kustomize.toolkit.fluxcd.io/name": "apps"})}, "GitOpsManaged", True),
        ({"workload": deployment(labels={"helm.toolkit.fluxcd.io/name": "web"})}, "GitOpsManaged", True),
        ({"status": status(last=NOW - dt.timedelta(minutes=4))}, "Cooldown", False),
        ({"status": status(times=3)}, "RateLimited", True),
        ({"pod": pod(limit="512Mi")}, "LimitManagedElsewhere", True),
    ],
)
def test_refusals(over: dict[str, Any], reason: str, human: bool) -> None:
    plan = oom_plan.plan(situation(**over))
    assert (plan.mode, plan.reason, plan.needs_human) == (Mode.REFUSE, reason, human), plan.message
    assert plan.new and plan.kill  # the kill is still counted
    out = oom_plan.outcome(plan)
    assert (out.state, out.reason) == (incident.ActionState.REFUSED, reason)


@pytest.mark.parametrize(
    "over",
    [
        {"workload": deployment(annotations={"oncall.dev/remediation": "disabled"})},
        {"workload": deployment(paused=True)},
        {"workload": deployment(labels={"argocd.argoproj.io/instance": "shop"})},
        {"status": status(raises=3)},
    ],
)
def test_refusals_record_the_recommended_change(over: dict[str, Any]) -> None:
    plan = oom_plan.plan(situation(**over))
    assert plan.change and plan.change.after == "limits.memory=356Mi"
    assert "recommended: raise memory of container app" in plan.message


def test_cooldown_and_window_pass_when_old_enough() -> None:
    s = status(last=NOW - dt.timedelta(minutes=5), times=2)
    assert oom_plan.plan(situation(status=s)).mode == Mode.APPLY


def test_gitops_allowed_by_the_runbook() -> None:
    plan = oom_plan.plan(
        situation(
            workload=deployment(labels={"argocd.argoproj.io/instance": "shop"}),
            runbook=book({}, guard={"allowGitOps": True}),
        )
    )
    assert plan.mode == Mode.APPLY


@pytest.mark.parametrize(
    "over", [{"dry_run": True}, {"runbook": book({}, guard={"dryRun": True})}], ids=["operator-wide", "runbook"]
)
def test_dry_run_keeps_the_planned_patch(over: dict[str, Any]) -> None:
    plan = oom_plan.plan(situation(**over))
    assert (plan.mode, plan.reason, plan.needs_human) == (Mode.DRY_RUN, "DryRun", True)
    assert plan.change and plan.change.ops
    assert oom_plan.outcome(plan).state == incident.ActionState.DRY_RUN
    rejected = oom_plan.outcome(plan, rejected="LimitRange says no")
    assert rejected.reason == "DryRunRejected" and "LimitRange says no" in rejected.message


def test_approval_required_waits() -> None:
    plan = oom_plan.plan(situation(runbook=book({}, approval="Required")))
    assert (plan.mode, plan.reason) == (Mode.AWAIT, "ApprovalRequired")
    assert oom_plan.outcome(plan).state == incident.ActionState.AWAITING_APPROVAL


def test_nothing_when_every_kill_is_counted() -> None:
    assert oom_plan.plan(situation(status=status(seen=(KEY,)))).mode == Mode.NOTHING


def test_kill_under_an_older_template_is_only_recorded() -> None:
    plan = oom_plan.plan(situation(workload=deployment("356Mi"), pod=pod("256Mi")))
    assert (plan.mode, plan.reason, plan.change) == (Mode.RECORD, "Superseded", None)
    assert oom_plan.outcome(plan).state is None


def test_marker_on_the_workload_recovers_an_unrecorded_patch() -> None:
    w = deployment("356Mi", annotations={"oncall.dev/remediated-kill": KEY})
    plan = oom_plan.plan(situation(workload=w, pod=pod("256Mi")))
    assert (plan.mode, plan.reason) == (Mode.RECOVER, "Recovered")
    assert plan.change and (plan.change.type, plan.change.before, plan.change.after) == (
        runbook.ActionType.RAISE_MEMORY_LIMIT,
        "limits.memory=256Mi",
        "limits.memory=356Mi",
    )
    assert oom_plan.outcome(plan).state == incident.ActionState.APPLIED


def test_workload_without_annotations_gets_the_map_only_as_read() -> None:
    plan = oom_plan.plan(situation(workload=deployment(annotations={})))
    assert plan.change and plan.change.ops[-1]["path"] == "/metadata/annotations/oncall.dev~1remediated-kill"
    w = dataclasses.replace(deployment(), annotations=None)
    plan = oom_plan.plan(situation(workload=w))
    assert plan.change and list(plan.change.ops[-2:]) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/metadata/annotations", "value": {"oncall.dev/remediated-kill": KEY}},
    ]


@pytest.mark.parametrize(
    ("w", "rule", "after"),
    [
        pytest.param(deployment(request="128Mi"), {}, "limits.memory=356Mi", id="burstable: limit only"),
        pytest.param(
            deployment(request="128Mi"),
            {"raiseRequest": True},
            "limits.memory=356Mi requests.memory=228Mi",
            id="raiseRequest: same rule",
        ),
        pytest.param(
            deployment(request="256Mi", cpu="1"),
            {},
            "limits.memory=356Mi requests.memory=356Mi",
            id="guaranteed: request follows to keep QoS",
        ),
        pytest.param(
            deployment(request="256Mi", cpu="1"),
            {"allowQosChange": True},
            "limits.memory=356Mi",
            id="guaranteed, QoS change allowed",
        ),
        pytest.param(deployment(cpu="1"), {}, "limits.memory=356Mi", id="guaranteed by defaulting: limit suffices"),
        pytest.param(
            deployment(request="200Mi", cpu="1"),
            {"raiseRequest": True},
            "limits.memory=356Mi requests.memory=300Mi",
            id="burstable stays burstable",
        ),
    ],
)
def test_requests_and_qos(w: workload.Workload, rule: dict[str, Any], after: str) -> None:
    before = workload.qos_class(w.template["spec"])
    plan = oom_plan.plan(situation(workload=w, runbook=book(rule)))
    assert plan.mode == Mode.APPLY and plan.change and plan.change.after == after
    if not rule.get("allowQosChange"):
        assert workload.qos_class(plan.change.template["spec"]) == before


def test_restart_only_runbook_restarts() -> None:
    plan = oom_plan.plan(situation(runbook=book(None, restart=True), workload=deployment(template_annotations={})))
    assert plan.mode == Mode.APPLY and plan.change and plan.change.type == runbook.ActionType.RESTART_ROLLOUT
    assert plan.change.ops[0] == {
        "op": "add",
        "path": "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
        "value": "2026-01-05T09:30:00Z",
    }


def test_restart_tests_the_previous_restart_and_adds_the_map_when_missing() -> None:
    earlier = {"kubectl.kubernetes.io/restartedAt": "2026-01-05T08:00:00Z"}
    plan = oom_plan.plan(situation(runbook=book(None, restart=True), workload=deployment(template_annotations=earlier)))
    assert plan.change and plan.change.ops[0]["op"] == "test" and plan.change.ops[0]["value"] == "2026-01-05T08:00:00Z"
    plan = oom_plan.plan(situation(runbook=book(None, restart=True)))
    assert plan.change and plan.change.ops[1]["path"] == "/spec/template/metadata/annotations"


def test_restart_superseded_when_the_pod_predates_the_last_restart() -> None:
    w = deployment(template_annotations={"kubectl.kubernetes.io/restartedAt": "2026-01-05T09:10:00Z"})
    plan = oom_plan.plan(situation(runbook=book(None, restart=True), workload=w))
    assert (plan.mode, plan.reason) == (Mode.RECORD, "Superseded")


def test_paused_deployment_is_never_restarted() -> None:
    plan = oom_plan.plan(situation(runbook=book(None, restart=True), workload=deployment(paused=True)))
    assert (plan.mode, plan.reason) == (Mode.REFUSE, "Paused")


def test_at_cap_restarts_when_allowed_and_still_asks_for_a_human() -> None:
    plan = oom_plan.plan(
        situation(workload=deployment("1Gi"), pod=pod("1Gi"), runbook=book({"restartAtCap": True}, restart=True))
    )
    assert (plan.mode, plan.reason, plan.needs_human) == (Mode.APPLY, "AtCap", True)
    assert plan.change and plan.change.type == runbook.ActionType.RESTART_ROLLOUT and plan.change.action == "restart"


def test_container_not_in_the_template() -> None:
    p = dataclasses.replace(pod(), kills=(oom.Kill(KEY, "istio-proxy", False, 1, FINISHED, 137, "1Gi", None),))
    plan = oom_plan.plan(situation(pod=p))
    assert (plan.mode, plan.reason) == (Mode.REFUSE, "ContainerNotInTemplate")


def test_apply_outcomes() -> None:
    plan = oom_plan.plan(situation())
    assert oom_plan.outcome(plan).state == incident.ActionState.APPLIED
    rejected = oom_plan.outcome(plan, rejected="maximum memory usage per Container is 300Mi")
    assert (rejected.state, rejected.reason, rejected.needs_human) == (
        incident.ActionState.REFUSED,
        "DryRunRejected",
        True,
    )
    assert "nothing written" in rejected.message and "300Mi" in rejected.message
    failed = oom_plan.outcome(plan, failed="boom")
    assert (failed.state, failed.reason) == (incident.ActionState.FAILED, "PatchFailed")


def test_newest_unseen_kill_is_acted_on() -> None:
    older = oom.Kill(f"{UID}/app/2026-01-05T09:00:00Z", "app", False, 0, "2026-01-05T09:00:00Z", 137, "256Mi", None)
    p = dataclasses.replace(pod(), kills=(older, *pod().kills))
    plan = oom_plan.plan(situation(pod=p, status=status(seen=(older.key,))))
    assert [k.key for k in plan.new] == [KEY] and plan.kill and plan.kill.key == KEY
