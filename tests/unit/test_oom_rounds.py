"""No silent loops: a reopened OOM Incident is a new round, caps count per window, NeedsHuman pages.

Virtual time: every ``now`` is passed in; the escalation engine runs on the handbook's policy
(``examples/escalation-policy.yaml``), whose ``warning`` severity only notifies Slack.
"""

import datetime as dt

import pytest

from oncall_operator.api import base, incident
from oncall_operator.domain import escalation, lifecycle, oom_incident, oom_plan
from tests.unit import test_escalation as e
from tests.unit import test_oom_plan as t

NOW = t.NOW
WEEK = dt.timedelta(days=7)
Phase = incident.Phase
QUIET, DEADLINE = dt.timedelta(minutes=30), dt.timedelta(minutes=15)


def spec(severity: str = "warning") -> incident.IncidentSpec:
    return oom_incident.spec(t.pod(), t.pod().kills[0], "Deployment", "web", t.book({})).model_copy(
        update={"severity": base.Severity(severity)}
    )


def record(status: incident.IncidentStatus | None, now: dt.datetime = NOW, **over: object) -> incident.IncidentStatus:
    plan = oom_plan.plan(t.situation(status=status, now=now, **over))
    new = oom_incident.record(spec(), status, plan, oom_plan.outcome(plan), now, "web-5f-abc")
    assert new is not None
    return new


def sends(status: incident.IncidentStatus, now: dt.datetime, severity: str = "warning") -> list[tuple[str, int, str]]:
    inc = incident.Incident(spec=spec(severity), status=status)
    decision = escalation.decide(e.POLICY, inc, now, e.resolver())
    return [(s.kind, s.level, s.text) for s in decision.sends]


def week_old_resolved() -> incident.IncidentStatus:
    """Resolved a week ago after three raises, an acknowledgement and every level of a critical page."""
    before = NOW - WEEK
    st = t.status(raises=3, raised_ago=WEEK)
    st.phase, st.resolved_at, st.resolved_by = Phase.RESOLVED, before, "oncall-operator"
    st.acknowledged_by, st.acknowledged_at = "devops-lead", before
    st.guardrails.seen = ["an-old-kill"]
    st.first_seen = before - dt.timedelta(hours=2)
    st.escalation = incident.Escalation(level=3, started_at=st.first_seen, closed=True)
    lifecycle.needs_human(st, True, "RaiseLimitReached", "3 raises", before)
    return st


def test_reopening_starts_a_new_round() -> None:
    st = record(week_old_resolved())
    esc = st.escalation
    assert (esc.started_at, esc.level, esc.loop, esc.closed) == (NOW, 0, 0, False)
    assert (st.acknowledged_by, st.acknowledged_at) == ("", None)
    assert st.guardrails.raises == 1  # the round's first raise: the week-old three do not count
    assert st.phase == Phase.MITIGATED and not lifecycle.human_needed(st)
    assert [e.type for e in st.timeline][-3:] == ["OOMKilled", "Reopened", "ActionApplied"]


def test_a_reopened_round_that_needs_a_human_pages_level_1_not_level_3_and_no_status_update_670() -> None:
    opted_out = t.deployment(annotations={"oncall.dev/remediation": "disabled"})
    st = record(week_old_resolved(), workload=opted_out)
    assert st.phase == Phase.REOPENED and st.conditions[-1].type == "NeedsHuman"
    sent = sends(st, NOW, severity="critical")
    assert [(kind, level) for kind, level, _ in sent] == [("page", 1)]
    assert not any("Status update" in text or "War room" in text for _, _, text in sent)


@pytest.mark.parametrize(
    ("raises", "ago", "mode"),
    [
        (3, dt.timedelta(minutes=20), oom_plan.Mode.REFUSE),  # three within the 1h window: the cap
        (3, dt.timedelta(hours=2), oom_plan.Mode.APPLY),  # three, but outside the window
        (2, dt.timedelta(minutes=20), oom_plan.Mode.APPLY),
        (0, dt.timedelta(minutes=20), oom_plan.Mode.APPLY),
    ],
)
def test_max_raises_counts_within_the_window(raises: int, ago: dt.timedelta, mode: oom_plan.Mode) -> None:
    plan = oom_plan.plan(t.situation(status=t.status(raises=raises, raised_ago=ago)))
    assert plan.mode == mode, plan.message


def test_a_kill_of_a_resolved_incident_is_planned_as_a_new_round() -> None:
    st = t.status(raises=1)
    st.phase = Phase.RESOLVED
    plan = oom_plan.plan(t.situation(status=st, runbook=t.book({"maxRaises": 1})))
    assert plan.mode == oom_plan.Mode.APPLY, plan.message


def test_the_round_counter_bounds_the_window_count() -> None:
    st = t.status(raises=3)
    st.guardrails.raises = 0  # a new round began after those raises
    assert oom_plan.raises(st, dt.timedelta(hours=1), NOW) == 0


def test_needs_human_pages_even_where_the_severity_only_notifies() -> None:
    quiet = incident.IncidentStatus(phase=Phase.TRIGGERED, first_seen=NOW)
    assert [k for k, _, _ in sends(quiet, NOW)] == ["notify"]
    lifecycle.page_human(quiet, "RolloutStuck", "stuck", NOW)
    assert [(k, lvl) for k, lvl, _ in sends(quiet, NOW)] == [("page", 1)]


def mitigated(at: dt.datetime = NOW) -> incident.IncidentStatus:
    return record(None, now=at)


def test_acknowledging_a_mitigated_incident_keeps_its_auto_resolve() -> None:
    st = mitigated()
    acked, _ = lifecycle.acknowledge(st, "devops-lead", NOW)
    assert acked is not None and oom_incident.settling({"status": acked.wire()})
    started = oom_incident.settle(acked, True, QUIET, NOW, DEADLINE)
    assert started is not None
    done = oom_incident.settle(started, True, QUIET, NOW + QUIET, DEADLINE)
    assert done is not None and done.phase == Phase.RESOLVED


def test_acknowledged_without_an_applied_change_is_a_persons_to_resolve() -> None:
    opted_out = record(None, workload=t.deployment(annotations={"oncall.dev/remediation": "disabled"}))
    acked, _ = lifecycle.acknowledge(opted_out, "devops-lead", NOW)
    assert acked is not None and not oom_incident.settling({"status": acked.wire()})
    assert oom_incident.settle(acked, True, QUIET, NOW, DEADLINE) is None


def test_a_stuck_rollout_pages_then_heals_when_it_completes() -> None:
    st = mitigated()
    assert oom_incident.settle(st, False, QUIET, NOW + DEADLINE - dt.timedelta(seconds=1), DEADLINE) is None
    stuck = oom_incident.settle(st, False, QUIET, NOW + DEADLINE, DEADLINE)
    assert stuck is not None and stuck.phase == Phase.TRIGGERED  # not Mitigated while a human is needed
    assert lifecycle.human_needed(stuck) and stuck.conditions[-1].reason == "RolloutStuck"
    assert stuck.escalation.started_at == NOW + DEADLINE
    assert [(k, lvl) for k, lvl, _ in sends(stuck, NOW + DEADLINE)] == [("page", 1)]  # a warning, paged
    assert oom_incident.settling({"status": stuck.wire()})
    assert oom_incident.settle(stuck, False, QUIET, NOW + 2 * DEADLINE, DEADLINE) is None  # pages once
    healed = oom_incident.settle(stuck, True, QUIET, NOW + 2 * DEADLINE, DEADLINE)
    assert healed is not None and healed.phase == Phase.MITIGATED and not lifecycle.human_needed(healed)
    assert healed.guardrails.healthy_since == NOW + 2 * DEADLINE


def test_an_on_delete_statefulset_is_applied_but_pages_until_its_pods_are_replaced() -> None:
    from tests.unit.test_oom_owners import owner

    st = record(None, target_kind="StatefulSet", workload=owner("StatefulSet", "OnDelete"))
    assert st.actions[-1].state == incident.ActionState.APPLIED and st.phase == Phase.TRIGGERED
    assert st.conditions[-1].reason == "RolloutOnDelete" and lifecycle.human_needed(st)
    assert oom_incident.settling({"status": st.wire()})
    healed = oom_incident.settle(st, True, QUIET, NOW + dt.timedelta(minutes=5), DEADLINE)
    assert healed is not None and healed.phase == Phase.MITIGATED
