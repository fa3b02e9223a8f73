"""The claim of a new Incident's first page, in the intake's opening write (issue 18: three writes per alert Incident).

:func:`claiming.at_opening` claims what the escalation would claim, with the same decision, unless
a maintenance window may mute the Incident's pages: then it claims nothing and the escalation
decides with the workload read (a page is never claimed past a window on a guess).
"""

import dataclasses
import datetime as dt
from typing import Any

import pytest

from oncall_operator.api import incident, maintenance
from oncall_operator.domain import delivery, escalation, lifecycle
from oncall_operator.executor import claiming, config, delivering, indices
from tests.unit.test_page_budget import POLICY  # one page to Ada through a webhook, at once

NOW = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)
WINDOW = {"start": "2026-03-10T21:00:00Z", "end": "2026-03-10T23:00:00Z"}


@dataclasses.dataclass
class Ctx:
    config: config.Config
    indices: indices.Indices


def ctx(*windows: dict[str, Any], policies: bool = True) -> Any:
    found = indices.Indices(
        policies={("apps", "pager"): [POLICY]} if policies else {},
        runbooks={},
        schedules={},
        windows={
            ("apps", f"w{i}"): [maintenance.MaintenanceWindowSpec.model_validate(w)] for i, w in enumerate(windows)
        },
    )
    return Ctx(config.Config(namespace="oncall-system"), found)


def opened() -> tuple[incident.Incident, dict[str, Any]]:
    spec = incident.IncidentSpec(title="disk full", severity="critical", escalation_policy_ref={"name": "pager"})
    inc = incident.Incident(metadata={"namespace": "apps", "name": "disk"}, spec=spec)
    raw = inc.model_dump(by_alias=True, mode="json", exclude_none=True)
    return inc.model_copy(update={"status": lifecycle.opened(spec, NOW)}), raw


def test_the_opening_claims_level_one_as_the_escalation_would() -> None:
    inc, raw = opened()
    decision = claiming.at_opening(ctx())(inc, raw, NOW)
    assert decision is not None
    assert [(s.kind, s.level, s.channels) for s in decision.sends] == [("page", 1, ("hook",))]
    [note] = decision.status.escalation.notifications
    assert (note.result, note.claimed_by) == (delivery.PENDING, delivering.ME.identity)
    assert inc.status is not None
    engine = escalation.decide(POLICY, inc, NOW, claiming.resolver("apps", POLICY, {}), delivering.claimant())
    assert decision.status == engine.status  # one decision, whoever writes it


@pytest.mark.parametrize(
    ("windows", "policies"),
    [
        ([{**WINDOW, "mutes": "Pages"}], True),  # muted: the escalation holds it and says so
        ([{**WINDOW, "mutes": "All", "scope": {"workloadSelector": {"app": "db"}}}], True),
        ([], False),  # no policy: nobody to page
    ],
    ids=["muted", "a-window-selects-workloads", "no-policy"],
)
def test_nothing_is_claimed_at_the_opening_where_the_escalation_must_decide(
    windows: list[dict[str, Any]], policies: bool
) -> None:
    inc, raw = opened()
    assert claiming.at_opening(ctx(*windows, policies=policies))(inc, raw, NOW) is None


def test_a_window_not_active_now_does_not_stop_the_claim() -> None:
    inc, raw = opened()
    later = {"start": "2026-03-11T21:00:00Z", "end": "2026-03-11T23:00:00Z", "mutes": "Pages"}
    assert claiming.at_opening(ctx(later))(inc, raw, NOW) is not None
