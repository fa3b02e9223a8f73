"""How kills and actions land in the Incident: counted once, phases, NeedsHuman, resolution."""

import datetime as dt
import re

import pytest

from oncall_operator.api import base, incident
from oncall_operator.domain import matching, oom, oom_incident, oom_plan
from tests.unit import test_oom_plan as t

NOW = t.NOW
Phase = incident.Phase
SPEC = oom_incident.spec(t.pod(), t.pod().kills[0], "Deployment", "web", t.book({}))


def run(status: incident.IncidentStatus | None, **over: object) -> tuple[oom_plan.Plan, incident.IncidentStatus]:
    plan = oom_plan.plan(t.situation(status=status, **over))
    out = oom_plan.outcome(plan)
    new = oom_incident.record(SPEC, status, plan, out, NOW, "web-5f-abc", ["Check memory"])
    assert new is not None
    return plan, new


def condition(st: incident.IncidentStatus) -> tuple[str, str] | None:
    found = [c for c in st.conditions if c.type == "NeedsHuman"]
    return (found[0].status.value, found[0].reason) if found else None


def test_first_kill_applied_opens_a_mitigated_incident() -> None:
    plan, st = run(None)
    assert (st.phase, st.occurrences, st.guardrails.raises, st.guardrails.seen) == (Phase.MITIGATED, 1, 1, [t.KEY])
    assert st.guardrails.last_action_at == NOW and st.guardrails.action_times == [NOW]
    [a] = st.actions
    assert (a.action, a.type, a.state, a.before, a.after, a.occurrence) == (
        "raise",
        "raiseMemoryLimit",
        incident.ActionState.APPLIED,
        "limits.memory=256Mi",
        "limits.memory=356Mi",
        t.KEY,
    )
    assert plan.change and a.patch == plan.change.patch
    [d] = st.detections
    assert (d.pod, d.container, d.restart_count, d.finished_at, d.limit) == (
        "web-5f-abc",
        "app",
        1,
        t.FINISHED,
        "256Mi",
    )
    assert [e.type for e in st.timeline] == ["Triggered", "OOMKilled", "ActionApplied"]
    assert condition(st) == ("False", "Mitigated")
    assert [c.title for c in st.checklist] == ["Check memory"]


def test_recording_again_writes_nothing() -> None:
    plan, st = run(None)
    assert oom_incident.record(SPEC, st, plan, oom_plan.outcome(plan), NOW, "p") is None


def test_status_opened_by_the_incident_handler_is_not_counted_as_a_kill() -> None:
    opened = incident.IncidentStatus(phase=Phase.TRIGGERED, occurrences=1, first_seen=NOW)
    _, st = run(opened)
    assert st.occurrences == 1


@pytest.mark.parametrize(
    ("before", "over", "after"),
    [
        (Phase.RESOLVED, {}, Phase.MITIGATED),  # reopened, then mitigated again
        (Phase.MITIGATED, {"runbook": t.book({}, guard={"cooldown": "2h"})}, Phase.TRIGGERED),
        (Phase.MITIGATED, {"workload": t.deployment("356Mi")}, Phase.MITIGATED),  # superseded kill
        (Phase.ACKNOWLEDGED, {"runbook": None}, Phase.ACKNOWLEDGED),
        (Phase.TRIGGERED, {"workload": t.deployment("1Gi"), "pod": t.pod("1Gi")}, Phase.TRIGGERED),
    ],
)
def test_phases(before: incident.Phase, over: dict[str, object], after: incident.Phase) -> None:
    prior = incident.IncidentStatus(phase=before, occurrences=1, last_seen=NOW - dt.timedelta(hours=1))
    prior.guardrails.seen = ["earlier"]
    prior.guardrails.last_action_at = NOW - dt.timedelta(hours=1)
    _, st = run(prior, **over)
    assert st.phase == after and st.occurrences == 2
    if before == Phase.RESOLVED:
        assert "Reopened" in [e.type for e in st.timeline]


def test_needs_human_is_set_once_with_its_reason() -> None:
    _, st = run(None, workload=t.deployment("1Gi"), pod=t.pod("1Gi"))
    assert condition(st) == ("True", "AtCap") and st.phase == Phase.TRIGGERED
    assert [e.type for e in st.timeline].count("NeedsHuman") == 1


def test_restart_at_cap_is_applied_but_not_mitigated() -> None:
    _, st = run(None, workload=t.deployment("1Gi"), pod=t.pod("1Gi"), runbook=t.book({"restartAtCap": True}))
    assert st.actions[0].state == incident.ActionState.APPLIED and st.actions[0].type == "restartRollout"
    assert st.phase == Phase.TRIGGERED and condition(st) == ("True", "AtCap") and st.guardrails.raises == 0


def test_cooldown_refusal_does_not_ask_for_a_human() -> None:
    prior = incident.IncidentStatus(phase=Phase.MITIGATED, occurrences=1)
    prior.guardrails.seen, prior.guardrails.last_action_at = ["earlier"], NOW
    _, st = run(prior)
    assert st.actions[-1].state == incident.ActionState.REFUSED and condition(st) is None


def test_seen_keys_are_bounded_keeping_the_newest() -> None:
    prior = incident.IncidentStatus(phase=Phase.TRIGGERED, occurrences=200)
    prior.guardrails.seen = [f"k{i}" for i in range(200)]
    _, st = run(prior, runbook=None)
    assert len(st.guardrails.seen) == 200 and st.guardrails.seen[-1] == t.KEY and "k0" not in st.guardrails.seen
    assert st.occurrences == 201
    incident.IncidentStatus.model_validate(st.wire())  # still within the schema's bounds


def test_settle() -> None:
    mitigated = incident.IncidentStatus(phase=Phase.MITIGATED)
    quiet = dt.timedelta(minutes=30)
    assert oom_incident.settle(incident.IncidentStatus(phase=Phase.TRIGGERED), True, quiet, NOW) is None
    assert oom_incident.settle(mitigated, False, quiet, NOW) is None
    started = oom_incident.settle(mitigated, True, quiet, NOW)
    assert started and started.guardrails.healthy_since == NOW
    assert oom_incident.settle(started, True, quiet, NOW + dt.timedelta(minutes=29)) is None
    reset = oom_incident.settle(started, False, quiet, NOW + dt.timedelta(minutes=29))
    assert reset and reset.guardrails.healthy_since is None
    done = oom_incident.settle(started, True, quiet, NOW + quiet)
    assert done and (done.phase, done.resolved_by, done.timeline[-1].type) == (
        Phase.RESOLVED,
        "oncall-operator",
        "Resolved",
    )


def test_a_new_kill_resets_the_quiet_period() -> None:
    prior = incident.IncidentStatus(phase=Phase.MITIGATED, occurrences=1)
    prior.guardrails.seen, prior.guardrails.healthy_since = ["earlier"], NOW
    prior.guardrails.last_action_at = NOW
    _, st = run(prior)
    assert st.actions[-1].reason.startswith("Cooldown") and st.guardrails.healthy_since is None


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Deployment", "web"), ("StatefulSet", "db.primary"), ("Pod", "x" * 253), ("Deployment", "UPPER_case")],
)
def test_incident_names_are_deterministic_dns_labels(kind: str, name: str) -> None:
    found = oom_incident.incident_name(kind, "shop", name)
    assert found == oom_incident.incident_name(kind, "shop", name)
    assert len(found) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", found)
    assert found.startswith(f"oom-{kind.lower()}-")
    assert found != oom_incident.incident_name(kind, "other", name)


def test_spec_refers_to_a_default_runbook_across_namespaces() -> None:
    chosen = matching.Chosen(
        "oncall-system",
        "pod-oom-killed",
        t.book({}).spec.model_copy(update={"escalation_policy_ref": base.LocalRef(name="p")}),
    )
    kill = oom.Kill("k", "app", False, 0, "", None, None, None)
    spec = oom_incident.spec(t.pod(), kill, "Deployment", "web", chosen)
    assert spec.runbook_ref == base.ObjectRef(name="pod-oom-killed", namespace="oncall-system")
    assert spec.escalation_policy_ref == base.ObjectRef(name="p", namespace="oncall-system")
    local = oom_incident.spec(t.pod(), kill, "Deployment", "web", t.book({}))
    assert local.runbook_ref == base.ObjectRef(name="oom") and local.target.container == "app"
    assert local.source.type == incident.SourceType.OOM_KILL
