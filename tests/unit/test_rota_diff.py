"""The rota diff names exactly the hours whose people change: checked by tables and against the resolver.

The handbook's rotation (examples/) across the spring-forward week of 2026 (Berlin, Sunday 29 March).
"""

import copy
import datetime as dt
import itertools
import pathlib
import zoneinfo
from typing import Any

import pytest
import yaml

from oncall_operator.api import policy, schedule
from oncall_operator.domain import rota_diff, schedules

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")  # the handbook's zone
START, END = dt.datetime(2026, 3, 16, tzinfo=dt.UTC), dt.datetime(2026, 4, 13, tzinfo=dt.UTC)


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(dt.UTC)


def handbook() -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / "schedule.yaml").read_text())["spec"])


def spec(data: dict[str, Any]) -> schedule.OnCallScheduleSpec:
    return schedule.OnCallScheduleSpec.model_validate(data)


def changed(edit: Any) -> schedule.OnCallScheduleSpec:
    data = copy.deepcopy(handbook())
    edit(data)
    return spec(data)


def swap_two_weeks(data: dict[str, Any]) -> None:
    """SRE Engineer 2 (week of 23 March) and DevOps Lead (week of 30 March) swap, as two overrides."""
    data["overrides"] = [
        {"role": "primary", "user": "DevOps Lead", "start": "2026-03-23T09:00:00", "end": "2026-03-30T09:00:00"},
        {"role": "primary", "user": "SRE Engineer 2", "start": "2026-03-30T09:00:00", "end": "2026-04-06T09:00:00"},
    ]


def add_override(data: dict[str, Any]) -> None:
    data["overrides"] = [
        {
            "role": "primary",
            "user": "Backend Lead",
            "start": "2026-03-28T20:00:00+01:00",
            "end": "2026-03-29T10:00:00+02:00",
        }
    ]


def later_handoff(data: dict[str, Any]) -> None:
    data["roles"][0]["layers"][0]["rotation"]["handoffTime"] = "10:00"


def reword(data: dict[str, Any]) -> None:
    data["description"] = "reworded"
    data["roles"][0]["description"] = "reworded too"


def add_role(data: dict[str, Any]) -> None:
    data["roles"].append(
        {"name": "db", "layers": [{"name": "l", "rotation": {"participants": ["Backend Lead"], "start": "2026-04-06"}}]}
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            swap_two_weeks,
            [
                ("primary", "2026-03-23 09:00", "2026-03-30 09:00", 167, ("SRE Engineer 2",), ("DevOps Lead",)),
                ("primary", "2026-03-30 09:00", "2026-04-06 09:00", 168, ("DevOps Lead",), ("SRE Engineer 2",)),
            ],
        ),
        (
            add_override,  # the night the clocks go forward: 20:00 CET to 10:00 CEST is 13 hours
            [("primary", "2026-03-28 20:00", "2026-03-29 10:00", 13, ("SRE Engineer 2",), ("Backend Lead",))],
        ),
        (
            later_handoff,  # one hour at each Monday handoff, the DST week's included
            [
                ("primary", f"2026-{day} 09:00", f"2026-{day} 10:00", 1, (before,), (after,))
                for day, before, after in [  # before: the incoming person; after: the outgoing one stays
                    ("03-16", "SRE Engineer 1", "Backend Lead"),
                    ("03-23", "SRE Engineer 2", "SRE Engineer 1"),
                    ("03-30", "DevOps Lead", "SRE Engineer 2"),
                    ("04-06", "Backend Lead", "DevOps Lead"),
                ]
            ],
        ),
        (reword, []),
        (add_role, [("db", "2026-04-06 09:00", "2026-04-13 02:00", 161, (), ("Backend Lead",))]),
    ],
    ids=["swap-two-weeks", "override-over-dst", "handoff-an-hour-later", "reworded", "role-added"],
)
def test_schedule_changes(edit: Any, expected: list[tuple[Any, ...]]) -> None:
    old, new = spec(handbook()), changed(edit)
    found = rota_diff.schedule_changes(old, new, START, END)
    assert [
        (c.track, c.start, c.end, round((c.end - c.start).total_seconds() / 3600), c.before, c.after) for c in found
    ] == [(track, when(lo), when(hi), hours, before, after) for track, lo, hi, hours, before, after in expected]
    assert_exact(old, new, found)


def assert_exact(
    old: schedule.OnCallScheduleSpec, new: schedule.OnCallScheduleSpec, found: list[rota_diff.Change]
) -> None:
    """Against the resolver: every half hour and around every edge, the people differ exactly inside a change."""
    instants = {START + dt.timedelta(minutes=30 * n) for n in range(int((END - START) / dt.timedelta(minutes=30)))}
    instants |= {t + d for c in found for t in (c.start, c.end) for d in (-dt.timedelta(seconds=1), dt.timedelta(0))}
    for at in sorted(t for t in instants if START <= t < END):
        inside = [c for c in found if c.start <= at < c.end]
        before = {r.name: tuple(schedules.on_call(old, at)[r.name]) for r in old.roles}
        after = {r.name: tuple(schedules.on_call(new, at)[r.name]) for r in new.roles}
        differ = {name for name in {*before, *after} if before.get(name, ()) != after.get(name, ())}
        assert differ == {c.track for c in inside}, at
        for c in inside:
            assert (before.get(c.track, ()), after.get(c.track, ())) == (c.before, c.after), at


def test_render_names_the_hours_in_the_schedule_zone() -> None:
    found = rota_diff.schedule_changes(spec(handbook()), changed(add_override), START, END)
    assert rota_diff.render(found, BERLIN, "live", "new.yaml").splitlines() == [
        "--- live",
        "+++ new.yaml",
        "@@ primary: Sat 2026-03-28 20:00 CET -> Sun 2026-03-29 10:00 CEST (13h) @@",
        "-SRE Engineer 2",
        "+Backend Lead",
    ]
    assert rota_diff.render([], BERLIN, "a", "b") == ""


def escalation(edit: Any = None) -> policy.EscalationPolicySpec:
    data = yaml.safe_load((EXAMPLES / "escalation-policy.yaml").read_text())["spec"]
    if edit:
        edit(data)
    return policy.EscalationPolicySpec.model_validate(data)


def test_policy_changes_follow_the_schedules_of_each_version() -> None:
    old_rota, new_rota = {"valeo-oncall": spec(handbook())}, {"valeo-oncall": changed(add_override)}
    found = rota_diff.policy_changes(escalation(), escalation(), old_rota, new_rota, START, END)
    both = ("Backend Lead", "CTO / Engineering Manager")
    assert [(c.track, c.start, c.end, c.before, c.after) for c in found] == [
        (
            "level-1 (after 0)",
            when("2026-03-28 20:00"),
            when("2026-03-29 10:00"),
            ("SRE Engineer 2",),
            ("Backend Lead",),
        ),
        (
            "level-2 (after 15m)",
            when("2026-03-28 20:00"),
            when("2026-03-29 10:00"),
            ("SRE Engineer 2", "CTO / Engineering Manager"),
            both,
        ),
    ]


def test_a_level_paging_someone_else_or_later_is_named() -> None:
    def secondary_first(data: dict[str, Any]) -> None:
        data["levels"][0]["targets"] = [{"schedule": {"name": "valeo-oncall", "role": "secondary"}}]
        data["levels"][1]["after"] = "10m"

    rota = {"valeo-oncall": spec(handbook())}
    found = rota_diff.policy_changes(escalation(), escalation(secondary_first), rota, rota, START, END)
    removed = [c for c in found if c.track == "level-2 (after 15m)"]
    added = [c for c in found if c.track == "level-2 (after 10m)"]
    for track in (removed, added):  # the whole window, cut where the primary changes
        assert (track[0].start, track[-1].end) == (START, END)
        assert all(a.end == b.start for a, b in itertools.pairwise(track))
    assert all(c.after == () for c in removed) and all(c.before == () for c in added)
    assert {c.track for c in found} == {"level-1 (after 0)", "level-2 (after 15m)", "level-2 (after 10m)"}
    assert all(c.after == ("CTO / Engineering Manager",) for c in found if c.track == "level-1 (after 0)")


def test_a_policy_naming_an_unknown_schedule_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="valeo-oncall"):
        rota_diff.policy_changes(escalation(), escalation(), {}, {}, START, END)
