"""Runbook actions on alert Incidents: the order rule, each action's exact patch, every refusal as a row."""

import datetime as dt
import json
from typing import Any

import pytest

from oncall_operator.api import base, incident, policy, runbook
from oncall_operator.domain import actions, lifecycle, maintenance, matching

Mode = actions.Mode
State = incident.ActionState
NOW = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
OLD_TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:1"}]}}
NEW_TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:2"}]}}


def ts(minutes_ago: float) -> str:
    return (NOW - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(
    replicas: int = 2,
    revision: str = "2",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    paused: bool = False,
    kind: str = "Deployment",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "web",
        "namespace": "shop",
        "uid": "d-uid",
        "resourceVersion": "42",
        "annotations": {actions.REVISION: revision, **(annotations or {})},
        "labels": labels or {},
    }
    spec: dict[str, Any] = {"replicas": replicas, "template": NEW_TEMPLATE}
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def replica_set(rev: int, template: dict[str, Any], minutes_ago: float, owner: str = "d-uid") -> dict[str, Any]:
    tmpl = json.loads(json.dumps(template))
    tmpl["metadata"]["labels"]["pod-template-hash"] = f"h{rev}"
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"web-h{rev}",
            "creationTimestamp": ts(minutes_ago),
            "annotations": {actions.REVISION: str(rev), "note": f"from-rs-{rev}"},
            "ownerReferences": [{"uid": owner, "controller": True, "kind": "Deployment", "name": "web"}],
        },
        "spec": {"template": tmpl},
    }


def flags(data: dict[str, str] | None, annotations: dict[str, str] | None = None, store: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "flags", "namespace": "shop", "resourceVersion": "7"}
    if store:
        meta["labels"] = {"oncall.dev/feature-flags": "true"}
    if annotations is not None:
        meta["annotations"] = annotations
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    if data is not None:
        out["data"] = data
    return out


ROLLBACK = {"name": "rollback", "type": "rollback", "rollback": {"ifChangedWithin": "1h"}}
SCALE = {"name": "scale", "type": "scale", "scale": {"step": 2, "maxReplicas": 5}}
FLAG = {
    "name": "flag",
    "type": "setFeatureFlag",
    "setFeatureFlag": {"configMap": "flags", "keyFromLabel": "feature_flag"},
}
NOTIFY = {"name": "tell-db", "type": "notify", "notify": {"team": "database", "message": "pool exhausted"}}
POLICY = policy.EscalationPolicySpec.model_validate(
    {
        "levels": [{"name": "l1", "after": "0m", "targets": [{"team": "database"}]}],
        "channels": [{"name": "hook", "type": "Webhook", "secretRef": {"name": "s", "key": "url"}}],
        "severities": [{"severity": "critical", "response": "Page", "responseTime": "5m", "channels": ["hook"]}],
        "teams": [{"name": "database", "channel": "hook"}, {"name": "nochan"}],
    }
)


def chosen(*acts: dict[str, Any], **guard: Any) -> matching.Chosen:
    spec = runbook.RunbookSpec.model_validate(
        {"trigger": {"alertName": "APIErrorRateSLOCritical"}, "actions": list(acts), "guardrails": guard}
    )
    return matching.Chosen("shop", "api", spec)


def make_incident(
    labels: dict[str, str] | None = None,
    records: list[incident.ActionRecord] | None = None,
    occurrences: int = 1,
    last_action: dt.datetime | None = None,
    times: list[dt.datetime] | None = None,
    approvals: list[incident.Approval] | None = None,
    kind: str = "Deployment",
) -> incident.Incident:
    return incident.Incident(
        metadata=base.Metadata(name="inc", namespace="shop"),
        spec=incident.IncidentSpec(
            title="errors",
            severity=base.Severity.CRITICAL,
            source=incident.Source(type=incident.SourceType.ALERTMANAGER, labels=labels or {}),
            target=incident.Target(kind=kind, namespace="shop", name="web"),
            runbook_ref=base.ObjectRef(name="api"),
        ),
        status=incident.IncidentStatus(
            phase=incident.Phase.TRIGGERED,
            occurrences=occurrences,
            actions=records or [],
            approvals=approvals or [],
            guardrails=incident.Guardrails(last_action_at=last_action, action_times=times or []),
        ),
    )


def rec(action: str, state: State, reason: str, round_: str = "round-1") -> incident.ActionRecord:
    return incident.ActionRecord(at=NOW, action=action, state=state, reason=f"{reason}: x", occurrence=round_)


def due_of(rb: matching.Chosen, inc: incident.Incident) -> actions.Due:
    due = actions.next_action(rb.spec, inc.status)
    assert due is not None
    return due


# --- the order rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "approvals", "expected"),
    [
        ([], [], "flag"),
        ([rec("flag", State.REFUSED, "NoFlagLabel")], [], "rollback"),
        (
            [rec("flag", State.REFUSED, "NoFlagLabel"), rec("rollback", State.REFUSED, "NotChangedRecently")],
            [],
            "scale",
        ),
        ([rec("flag", State.APPLIED, "Applied")], [], None),  # applied: the list stops
        ([rec("flag", State.DRY_RUN, "DryRun")], [], None),
        ([rec("flag", State.REFUSED, "Cooldown")], [], None),  # a guardrail said no: nothing else instead
        ([rec("flag", State.FAILED, "PatchFailed")], [], None),
        ([rec("flag", State.AWAITING_APPROVAL, "ApprovalRequired")], [], None),  # waits
        (
            [rec("flag", State.AWAITING_APPROVAL, "ApprovalRequired")],
            [incident.Approval(action="flag", round="round-1", by="ann", at=NOW)],
            "flag",
        ),
        (
            [rec("flag", State.AWAITING_APPROVAL, "ApprovalRequired")],
            [incident.Approval(action="flag", round="round-0", by="ann", at=NOW)],  # another round's approval
            None,
        ),
        ([rec("flag", State.APPLIED, "Applied", "round-0")], [], "flag"),  # a new round starts over
    ],
)
def test_order_rule(
    records: list[incident.ActionRecord], approvals: list[incident.Approval], expected: str | None
) -> None:
    rb = chosen(FLAG, ROLLBACK, SCALE)
    due = actions.next_action(rb.spec, make_incident(records=records, approvals=approvals).status)
    assert (due.action.name if due else None) == expected
    if due is not None and approvals and expected:
        assert due.approval == approvals[0]


def test_notify_never_stops_the_list_and_continue_lets_the_next_run() -> None:
    rb = chosen(NOTIFY, {**SCALE, "continue": True}, ROLLBACK)
    inc = make_incident(records=[rec("tell-db", State.FAILED, "NotifyFailed"), rec("scale", State.APPLIED, "Applied")])
    due = actions.next_action(rb.spec, inc.status)
    assert due is not None and due.action.name == "rollback"


def test_nothing_runs_on_a_resolved_incident() -> None:
    inc = make_incident()
    assert inc.status is not None
    inc.status.phase = incident.Phase.RESOLVED
    assert actions.next_action(chosen(SCALE).spec, inc.status) is None


# --- rollback: exactly kubectl rollout undo -------------------------------------------------------


def test_rollback_copies_the_previous_revisions_template_without_the_hash() -> None:
    rb, inc = chosen(ROLLBACK), make_incident()
    rss = (replica_set(1, OLD_TEMPLATE, 600), replica_set(2, NEW_TEMPLATE, 10), replica_set(1, OLD_TEMPLATE, 5, "x"))
    facts = actions.Facts(now=NOW, target=deployment(), replica_sets=rss)
    p = actions.plan(inc, rb, due_of(rb, inc), facts)
    assert p.mode == Mode.APPLY and p.change is not None
    ops = list(p.change.ops)
    assert ops[0] == {"op": "test", "path": "/spec/template", "value": NEW_TEMPLATE}
    assert ops[1] == {"op": "replace", "path": "/spec/template", "value": OLD_TEMPLATE}
    assert ops[2] == {
        "op": "replace",
        "path": "/metadata/annotations",
        "value": {actions.REVISION: "2", "note": "from-rs-1", actions.MARKER: "shop/inc/round-1/rollback"},
    }
    assert (p.change.before, p.change.after) == ("revision 2 (app=web:2)", "revision 1 (app=web:1)")
    assert p.change.template == OLD_TEMPLATE


@pytest.mark.parametrize(
    ("target", "rss", "reason"),
    [
        (deployment(), (replica_set(1, OLD_TEMPLATE, 600), replica_set(2, NEW_TEMPLATE, 90)), "NotChangedRecently"),
        (deployment(revision="1"), (replica_set(1, NEW_TEMPLATE, 10),), "NoPreviousRevision"),
        (
            deployment(),
            (replica_set(1, NEW_TEMPLATE, 600), replica_set(2, NEW_TEMPLATE, 10)),
            "AlreadyAtPreviousRevision",
        ),
        (deployment(kind="StatefulSet"), (), "NoPreviousRevision"),
        (
            deployment(paused=True),
            (replica_set(1, OLD_TEMPLATE, 600), replica_set(2, NEW_TEMPLATE, 10)),
            "Paused",
        ),
        (
            deployment(annotations={"oncall.dev/remediation": "disabled"}),
            (replica_set(1, OLD_TEMPLATE, 600), replica_set(2, NEW_TEMPLATE, 10)),
            "OptedOut",
        ),
        (
            deployment(labels={"argocd.argoproj.io/instance": "shop"}),
            (replica_set(1, OLD_TEMPLATE, 600), replica_set(2, NEW_TEMPLATE, 10)),
            "GitOpsManaged",
        ),
    ],
)
def test_rollback_refusals(target: dict[str, Any], rss: tuple[dict[str, Any], ...], reason: str) -> None:
    rb = chosen(ROLLBACK)
    inc = make_incident(kind=target["kind"])
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, target=target, replica_sets=rss))
    assert (p.mode, p.reason) == (Mode.REFUSE, reason)
    assert p.needs_human == (reason not in actions.DOES_NOT_APPLY)


def revision_of(rev: int, template: dict[str, Any], minutes_ago: float) -> dict[str, Any]:
    return {
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"web-{rev}",
            "creationTimestamp": ts(minutes_ago),
            "ownerReferences": [{"uid": "d-uid", "controller": True, "kind": "StatefulSet", "name": "web"}],
        },
        "revision": rev,
        "data": {"spec": {"template": {**template, "$patch": "replace"}}},
    }


@pytest.mark.parametrize(
    ("revisions", "reason"),
    [
        ((revision_of(1, OLD_TEMPLATE, 600), revision_of(2, NEW_TEMPLATE, 10)), "Applied"),
        ((revision_of(1, OLD_TEMPLATE, 600), revision_of(2, NEW_TEMPLATE, 90)), "NotChangedRecently"),
        ((revision_of(2, NEW_TEMPLATE, 10),), "NoPreviousRevision"),
        ((revision_of(1, NEW_TEMPLATE, 600), revision_of(2, NEW_TEMPLATE, 10)), "AlreadyAtPreviousRevision"),
    ],
)
def test_statefulset_rollback_uses_controller_revisions(revisions: tuple[dict[str, Any], ...], reason: str) -> None:
    rb, inc = chosen(ROLLBACK), make_incident(kind="StatefulSet")
    facts = actions.Facts(now=NOW, target=deployment(kind="StatefulSet"), controller_revisions=revisions)
    p = actions.plan(inc, rb, due_of(rb, inc), facts)
    assert p.reason == reason
    if reason == "Applied":
        assert p.change is not None
        assert list(p.change.ops)[:2] == [
            {"op": "test", "path": "/spec/template", "value": NEW_TEMPLATE},
            {"op": "replace", "path": "/spec/template", "value": OLD_TEMPLATE},
        ]


# --- scale ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "after", "reason"),
    [(1, 3, "Applied"), (4, 5, "Applied"), (5, None, "AtMaxReplicas"), (7, None, "AtMaxReplicas")],
)
def test_scale_is_up_only_and_bounded(replicas: int, after: int | None, reason: str) -> None:
    rb, inc = chosen(SCALE), make_incident()
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, target=deployment(replicas=replicas)))
    assert p.reason == reason
    if after is None:
        assert p.mode == Mode.REFUSE and p.needs_human
        return
    assert p.change is not None
    assert list(p.change.ops)[:2] == [
        {"op": "test", "path": "/spec/replicas", "value": replicas},
        {"op": "replace", "path": "/spec/replicas", "value": after},
    ]


def test_scale_refused_when_an_hpa_targets_the_workload() -> None:
    rb, inc = chosen(SCALE), make_incident()
    hpa = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}}
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, target=deployment(), hpas=(hpa,)))
    assert (p.mode, p.reason) == (Mode.REFUSE, "HPAManaged")


@pytest.mark.parametrize(
    ("last", "times", "dry_run", "guard", "reason", "mode"),
    [
        (NOW - dt.timedelta(minutes=2), [], False, {}, "Cooldown", Mode.REFUSE),
        (None, [NOW - dt.timedelta(minutes=m) for m in (10, 20, 30)], False, {}, "RateLimited", Mode.REFUSE),
        (None, [NOW - dt.timedelta(minutes=m) for m in (70, 80, 90)], False, {}, "Applied", Mode.APPLY),
        (None, [], True, {}, "DryRun", Mode.DRY_RUN),
        (None, [], False, {"dryRun": True}, "DryRun", Mode.DRY_RUN),
    ],
)
def test_guardrails(
    last: dt.datetime | None, times: list[dt.datetime], dry_run: bool, guard: dict[str, Any], reason: str, mode: Mode
) -> None:
    rb, inc = chosen(SCALE, **guard), make_incident(last_action=last, times=times)
    facts = actions.Facts(now=NOW, target=deployment(), dry_run=dry_run)
    p = actions.plan(inc, rb, due_of(rb, inc), facts)
    assert (p.mode, p.reason) == (mode, reason)


def test_out_of_scope_and_namespace_opt_out() -> None:
    rb, inc = chosen(SCALE), make_incident()
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, target=deployment(), in_scope=False))
    assert p.reason == "OutOfScope"
    ns = {"oncall.dev/remediation": "disabled"}
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, target=deployment(), namespace_annotations=ns))
    assert (p.reason, p.text.startswith("the namespace says")) == ("OptedOut", True)


def test_marker_means_recovered_not_applied_twice() -> None:
    rb, inc = chosen(SCALE), make_incident()
    target = deployment(annotations={actions.MARKER: "shop/inc/round-1/scale"})
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, target=target))
    assert p.mode == Mode.RECOVER


# --- feature flags --------------------------------------------------------------------------------

STORE_TEST = {"op": "test", "path": "/metadata/labels/oncall.dev~1feature-flags", "value": "true"}


@pytest.mark.parametrize(
    ("labels", "cm", "mode", "reason", "ops"),
    [
        (
            {"feature_flag": "new-checkout"},
            flags({"new-checkout": "true"}, {}),
            Mode.APPLY,
            "Applied",
            [
                {"op": "test", "path": "/data/new-checkout", "value": "true"},
                {"op": "replace", "path": "/data/new-checkout", "value": "false"},
                STORE_TEST,
                {
                    "op": "add",
                    "path": "/metadata/annotations/oncall.dev~1remediated-action",
                    "value": "shop/inc/round-1/flag",
                },
            ],
        ),
        (
            {"feature_flag": "x"},
            flags(None),
            Mode.APPLY,
            "Applied",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "add", "path": "/data", "value": {"x": "false"}},
                STORE_TEST,
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "add", "path": "/metadata/annotations", "value": {actions.MARKER: "shop/inc/round-1/flag"}},
            ],
        ),
        ({}, flags({}), Mode.REFUSE, "NoFlagLabel", None),
        ({"feature_flag": "x"}, None, Mode.REFUSE, "ConfigMapNotFound", None),
        ({"feature_flag": "x"}, flags({"x": "false"}), Mode.REFUSE, "FlagAlreadySet", None),
        ({"feature_flag": "x"}, flags({"x": "true"}, store=False), Mode.REFUSE, "NotAFlagStore", None),
        (
            {"feature_flag": "x"},
            flags({"x": "true"}, {"oncall.dev/remediation": "disabled"}),
            Mode.REFUSE,
            "OptedOut",
            None,
        ),
    ],
)
def test_feature_flag(
    labels: dict[str, str], cm: dict[str, Any] | None, mode: Mode, reason: str, ops: list[Any] | None
) -> None:
    rb, inc = chosen(FLAG), make_incident(labels=labels)
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, config_map=cm))
    assert (p.mode, p.reason) == (mode, reason)
    if ops is not None:
        assert p.change is not None and list(p.change.ops) == ops


def test_flag_with_approval_waits_then_runs_once_approved() -> None:
    rb = chosen({**FLAG, "approval": "Required"})
    inc = make_incident(labels={"feature_flag": "x"})
    facts = actions.Facts(now=NOW, config_map=flags({"x": "true"}, {}))
    p = actions.plan(inc, rb, due_of(rb, inc), facts)
    assert (p.mode, p.reason) == (Mode.AWAIT, "ApprovalRequired")
    st = actions.record(inc.status, p, actions.outcome(p), NOW)
    assert st is not None and st.actions[-1].state == State.AWAITING_APPROVAL
    approved, text = lifecycle.approve(st, "flag", "ann", NOW)
    assert approved is not None and "approved by ann" in text
    assert lifecycle.approve(approved, "flag", "bob", NOW)[0] is None  # once per round
    inc.status = approved
    p = actions.plan(inc, rb, due_of(rb, inc), facts)
    assert p.mode == Mode.APPLY and p.text.endswith("(approved by ann)")
    done = actions.record(approved, p, actions.outcome(p), NOW)
    assert done is not None and [r.state for r in done.actions] == [State.AWAITING_APPROVAL, State.APPLIED]
    assert done.phase == incident.Phase.MITIGATED and done.guardrails.last_action_at == NOW
    with pytest.raises(ValueError, match="not awaiting approval"):
        lifecycle.approve(done, "other", "ann", NOW)


# --- notify ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "pol", "channels", "reason"),
    [
        ({"team": "database"}, POLICY, ("hook",), "Notify"),
        ({"channel": "hook"}, POLICY, ("hook",), "Notify"),
        ({"team": "nochan"}, POLICY, None, "NoChannel"),
        ({"team": "unknown"}, POLICY, None, "NoChannel"),
        ({"channel": "slack"}, POLICY, None, "NoChannel"),
        ({"team": "database"}, None, None, "NoPolicy"),
    ],
)
def test_notify_channel(
    settings: dict[str, str], pol: policy.EscalationPolicySpec | None, channels: tuple[str, ...] | None, reason: str
) -> None:
    rb = chosen({"name": "n", "type": "notify", "notify": settings})
    inc = make_incident()
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, policy=pol))
    assert p.reason == reason
    assert (p.message.channels if p.message else None) == channels


def test_notify_is_recorded_without_touching_guardrails() -> None:
    rb, inc = chosen(NOTIFY), make_incident()
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, policy=POLICY))
    st = actions.record(inc.status, p, actions.outcome(p), NOW)
    assert st is not None and st.timeline[-1].type == "NotifyDelivered"
    assert st.guardrails.last_action_at is None and st.phase == incident.Phase.TRIGGERED
    failed = actions.record(inc.status, p, actions.outcome(p, failed="hook: 500"), NOW)
    assert failed is not None and failed.timeline[-1].type == "NotifyFailed"
    assert actions.record(st, p, actions.outcome(p), NOW) is None  # recorded once per round


def test_a_window_muting_pages_holds_a_notify_and_records_it() -> None:
    rb, inc = chosen(NOTIFY), make_incident()
    mute = maintenance.Mute("shop/migration", NOW + dt.timedelta(hours=1), "schema migration")
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, policy=POLICY, muted_by=mute))
    assert (p.mode, p.reason, p.needs_human) == (actions.Mode.REFUSE, "Maintenance", False)
    assert p.message is not None and p.message.channels == ("hook",)  # kept, to be sent when the window ends
    assert "notify to hook muted by MaintenanceWindow shop/migration (schema migration)" in p.text
    st = actions.record(inc.status, p, actions.outcome(p), NOW)
    assert st is not None and [(r.state, r.reason.split(":")[0]) for r in st.actions] == [
        (State.REFUSED, "Maintenance")
    ]
    assert not lifecycle.human_needed(st)
    # a window pausing only actions does not hold a message (it changes nothing in the cluster)
    sent = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, policy=POLICY, paused_by=mute))
    assert sent.mode == actions.Mode.NOTIFY


def test_memory_actions_are_left_to_the_oom_watch() -> None:
    rb, inc = chosen({"name": "restart", "type": "restartRollout"}), make_incident()
    p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW))
    assert (p.reason, p.needs_human) == ("NotForAlerts", False)


def test_check_ticks_an_item_once() -> None:
    st = incident.IncidentStatus(checklist=[incident.ChecklistItem(title="Check logs")])
    ticked, _ = lifecycle.check(st, 1, "ann", NOW)
    assert ticked is not None and (ticked.checklist[0].done, ticked.checklist[0].by) == (True, "ann")
    assert lifecycle.check(ticked, 1, "bob", NOW)[0] is None
    with pytest.raises(ValueError, match="no item 2"):
        lifecycle.check(st, 2, "ann", NOW)


def test_a_team_notify_reaches_the_teams_own_address() -> None:
    mailing = POLICY.model_copy(
        update={
            "channels": [
                *POLICY.channels,
                policy.Channel.model_validate(
                    {"name": "mail", "type": "Email", "email": {"smtpHost": "smtp.example.com", "from": "oncall@x.io"}}
                ),
            ],
            "teams": [
                policy.Team(name="database", channel="hook", email="dba@example.com"),
                policy.Team(name="compliance", email="compliance@example.com"),
            ],
        }
    )
    inc = make_incident()
    for team, channel in (("database", "hook"), ("compliance", "mail")):  # no channel of its own: mailed
        rb = chosen({"name": "n", "type": "notify", "notify": {"team": team}})
        p = actions.plan(inc, rb, due_of(rb, inc), actions.Facts(now=NOW, policy=mailing))
        assert p.message is not None and p.message.channels == (channel,)
        assert [m.email for m in p.message.recipients] == [f"{'dba' if team == 'database' else team}@example.com"]
