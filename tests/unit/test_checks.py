"""What the operator checks beyond the schema, one row per mistake an SRE can make."""

import copy
import pathlib
from typing import Any

import pytest
import yaml

from oncall_operator.api import policy, runbook, schedule
from oncall_operator.domain import checks

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def example(kind: str) -> dict[str, Any]:
    for path in EXAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == kind:
                return dict(doc["spec"])
    raise LookupError(kind)


SCHEDULE = example("OnCallSchedule")
POLICY = example("EscalationPolicy")
RUNBOOK = example("Runbook")
SECRETS = {
    "oncall-pagerduty": frozenset({"routingKey"}),
    "oncall-slack": frozenset({"webhookURL"}),
    "oncall-smtp": frozenset({"credentials"}),
    "oncall-twilio": frozenset({"credentials"}),
    "oncall-slack-bot": frozenset({"token"}),
}


def edited(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    node: Any = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def test_examples_are_valid() -> None:
    sched = schedule.OnCallScheduleSpec.model_validate(SCHEDULE)
    pol = policy.EscalationPolicySpec.model_validate(POLICY)
    assert checks.check_schedule(sched).ok
    assert checks.check_policy(pol, {"valeo-oncall": sched}, SECRETS).ok
    assert checks.check_runbook(runbook.RunbookSpec.model_validate(RUNBOOK), {"valeo-escalation": pol}).ok


@pytest.mark.parametrize(
    ("path", "value", "reason", "field"),
    [
        ("timeZone", "Mars/Olympus_Mons", "UnknownTimeZone", "spec.timeZone"),
        (
            "roles.0.layers.0.rotation.turnLength",
            "30s",
            "InvalidTurnLength",
            "spec.roles[0].layers[0].rotation.turnLength",
        ),
        (
            "roles.0.layers.0.rotation.participants",
            ["Nobody Known"],
            "UnknownParticipant",
            "spec.roles[0].layers[0].rotation.participants",
        ),
        (
            "overrides",
            [
                {
                    "role": "primary",
                    "user": "Ghost",
                    "start": "2026-02-01T00:00:00Z",
                    "end": "2026-02-02T00:00:00Z",
                }
            ],
            "UnknownParticipant",
            "spec.overrides[0].user",
        ),
    ],
)
def test_schedule_problems(path: str, value: Any, reason: str, field: str) -> None:
    verdict = checks.check_schedule(schedule.OnCallScheduleSpec.model_validate(edited(SCHEDULE, path, value)))
    assert (verdict.ok, verdict.reason) == (False, reason)
    assert verdict.message.startswith(field)


@pytest.mark.parametrize(
    ("path", "value", "schedules", "secrets", "reason", "field"),
    [
        (None, None, {}, SECRETS, "ScheduleNotFound", "spec.levels[0].targets[0].schedule.name"),
        (
            "levels.0.targets.0.schedule.role",
            "tertiary",
            None,
            SECRETS,
            "RoleNotFound",
            "spec.levels[0].targets[0].schedule.role",
        ),
        ("levels.2.after", "10m", None, SECRETS, "LevelsOutOfOrder", "spec.levels[2].after"),
        (None, None, None, {}, "SecretNotFound", "spec.channels[0].secretRef"),
        (
            None,
            None,
            None,
            {**SECRETS, "oncall-slack": frozenset({"url"})},
            "SecretKeyNotFound",
            "spec.channels[1].secretRef.key",
        ),
        ("teams.0.channel", "telegram", None, SECRETS, "ChannelNotFound", "spec.teams[0].channel"),
        (
            "levels.2.targets",
            [{"team": "marketing"}],
            None,
            SECRETS,
            "TeamNotFound",
            "spec.levels[2].targets[0].team",
        ),
        (
            "businessHours.timeZone",
            "Europe/Atlantis",
            None,
            SECRETS,
            "UnknownTimeZone",
            "spec.businessHours.timeZone",
        ),
    ],
)
def test_policy_problems(path: str | None, value: Any, schedules: Any, secrets: Any, reason: str, field: str) -> None:
    spec = edited(POLICY, path, value) if path else POLICY
    known = {"valeo-oncall": schedule.OnCallScheduleSpec.model_validate(SCHEDULE)} if schedules is None else schedules
    verdict = checks.check_policy(policy.EscalationPolicySpec.model_validate(spec), known, secrets)
    assert (verdict.ok, verdict.reason) == (False, reason)
    assert verdict.message.startswith(field)


@pytest.mark.parametrize(
    ("path", "value", "reason", "field"),
    [
        (
            "escalationPolicyRef",
            {"name": "missing"},
            "PolicyNotFound",
            "spec.escalationPolicyRef.name",
        ),
        (
            "trigger.matchers",
            [{"label": "team", "op": "=~", "value": "(unclosed"}],
            "InvalidMatcher",
            "spec.trigger.matchers[0].value",
        ),
        (
            "actions",
            [{"name": "tell", "type": "notify", "notify": {"team": "marketing"}}],
            "TeamNotFound",
            "spec.actions[0].notify.team",
        ),
        (
            "actions",
            [{"name": "tell", "type": "notify", "notify": {"channel": "fax"}}],
            "ChannelNotFound",
            "spec.actions[0].notify.channel",
        ),
    ],
)
def test_runbook_problems(path: str, value: Any, reason: str, field: str) -> None:
    pol = policy.EscalationPolicySpec.model_validate(POLICY)
    verdict = checks.check_runbook(
        runbook.RunbookSpec.model_validate(edited(RUNBOOK, path, value)), {"valeo-escalation": pol}
    )
    assert (verdict.ok, verdict.reason) == (False, reason)
    assert verdict.message.startswith(field)


def test_every_problem_is_reported_not_just_the_first() -> None:
    spec = edited(
        edited(SCHEDULE, "timeZone", "Nowhere/Land"),
        "roles.0.layers.0.rotation.participants",
        ["X"],
    )
    verdict = checks.check_schedule(schedule.OnCallScheduleSpec.model_validate(spec))
    assert verdict.reason == "UnknownTimeZone" and "participants" in verdict.message


def test_overlapping_overrides_are_allowed_and_explained() -> None:
    overrides = [
        {"role": "primary", "user": "Backend Lead", "start": "2026-02-01T00:00:00Z", "end": "2026-02-03T00:00:00Z"},
        {"role": "primary", "user": "SRE Engineer 1", "start": "2026-02-02T00:00:00Z", "end": "2026-02-04T00:00:00Z"},
        {"role": "secondary", "user": "Backend Lead", "start": "2026-02-02T00:00:00Z", "end": "2026-02-04T00:00:00Z"},
    ]
    verdict = checks.check_schedule(
        schedule.OnCallScheduleSpec.model_validate(edited(SCHEDULE, "overrides", overrides))
    )
    assert verdict.ok and verdict.reason == "Valid"
    assert verdict.message.endswith(
        "note: spec.overrides[0] and [1] overlap on primary from 2026-02-02T00:00:00+00:00 to "
        "2026-02-03T00:00:00+00:00: 'SRE Engineer 1' (listed later) is on call there"
    )


def test_a_secret_the_operator_may_not_read_is_named_as_such() -> None:
    pol = policy.EscalationPolicySpec.model_validate(POLICY)
    sched = {"valeo-oncall": schedule.OnCallScheduleSpec.model_validate(SCHEDULE)}
    verdict = checks.check_policy(
        pol, sched, {k: v for k, v in SECRETS.items() if k != "oncall-slack"}, frozenset({"oncall-slack"})
    )
    assert (verdict.ok, verdict.reason) == (False, "SecretNotReadable")
    assert verdict.message.startswith("spec.channels[1].secretRef: the operator may not read Secret 'oncall-slack'")
